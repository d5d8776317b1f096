// Processes that outlive their starter, and waiting on any process by pid.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace localvm::process {

/// How to start a detached process.
struct detached_options {
    std::vector<std::string> argv;                        ///< Program and arguments; never via a shell.
    std::optional<std::vector<std::string>> environment;  ///< "NAME=value"; nullopt inherits.
    std::filesystem::path working_directory;              ///< Empty inherits.
    /// Appended to (created 0600); empty = /dev/null. Relative paths (here and
    /// below) are relative to our working directory, not the program's.
    std::filesystem::path stdout_file;
    std::filesystem::path stderr_file;                    ///< As `stdout_file`; may be the same file.
    /// When set, a small supervisor (forked, not exec'd; async-signal-safe
    /// code only; named "localvm-superv" in ps) waits for the process and
    /// writes how it ended to this file atomically (via "<file>.tmp"):
    /// "exited N\n" or "signaled N\n". A file left by an earlier run is removed
    /// by `spawn_detached`; none is written when exec fails.
    std::filesystem::path exit_status_file;
};

/// Starts a process in a new session that is not our child (it is
/// re-parented away at once), so it outlives this process and never becomes
/// our zombie. stdin is /dev/null; only fds 0, 1, 2 are open in it; signal
/// dispositions and mask are the defaults. Returns its pid once it has
/// exec'd (it blocks for that brief moment; not a coroutine).
/// Throws `localvm::error`: `errc::invalid_argument` for an empty argv,
/// `errc::not_found` naming a missing program or working directory,
/// `errc::io_error` naming an output file that cannot be opened,
/// `errc::process_failed` when exec fails for another reason (errno's text).
pid_t spawn_detached(const detached_options& opts);

/// Reads an exit status file written by `spawn_detached`; nullopt when absent
/// or unreadable. `.first` is "exited" or "signaled", `.second` the number.
std::optional<std::pair<std::string, int>> read_exit_status(const std::filesystem::path& file);

/// True when a process with this pid exists (and is not a zombie, per
/// /proc/<pid>/stat). False for pid <= 0.
bool alive(pid_t pid) noexcept;

/// Waits until process `pid` (any process, not only a child) has exited,
/// using a pidfd made readable by the kernel: no polling. Returns true when
/// it exited, false when `timeout` passed first. A pid that does not exist
/// counts as exited; a zero timeout just checks. Throws `errc::invalid_argument`
/// for pid <= 0, `errc::unsupported` without pidfd_open (Linux < 5.3).
/// Cancellation completes with operation_aborted.
boost::asio::awaitable<bool> wait_exit(pid_t pid, std::chrono::milliseconds timeout);

} // namespace localvm::process
