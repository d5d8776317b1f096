// Processes that outlive their starter, and waiting on any process by pid.
#pragma once

#include <localvm/wait.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
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
    /// When set, a small supervisor waits for the process and writes how it
    /// ended to this file atomically (via "<file>.tmp"):
    /// "exited N\n" or "signaled N\n", and "signaled 9 abandoned\n" when it
    /// killed the process itself because the starter never committed (see
    /// `detached_process`). A file left by an earlier run is removed by
    /// `spawn_detached`; none is written when exec fails.
    ///
    /// The supervisor is localvm's helper program `localvm-supervise`
    /// ("localvm-superv" in ps), exec'd: it holds none of this process's
    /// memory (a fork would keep a copy-on-write image of it for the
    /// program's whole life) and none of its descriptors. It is found in
    /// the directory the library was built for, <prefix>/<libexecdir>/localvm
    /// (installed with it), or in the directory named by the environment
    /// variable `LOCALVM_LIBEXECDIR` when that is set and not empty (a build
    /// tree: <build>/src/libexec; meson's test runs and `meson devenv` set
    /// it). Its environment is the program's.
    std::filesystem::path exit_status_file;
    /// When set, the program holds an fcntl write lock on this file (created
    /// 0600, truncated, its pid written in decimal) for its whole life, as
    /// QEMU does with its `-pidfile`: any process finds its pid with F_GETLK,
    /// safe against stale files and pid reuse. The lock is taken before exec
    /// on an fd the program inherits; a file locked by another process is
    /// `errc::already_running` naming it, one that cannot be opened
    /// `errc::io_error`. For programs that keep the fds they inherit.
    std::filesystem::path lock_file;
    /// Programs that exit at end of file on stdin (a `vde_switch` in the
    /// foreground): stdin is a pipe whose write end the supervisor keeps open,
    /// silent, until the program ends. Needs `exit_status_file` (a
    /// supervisor), else `errc::invalid_argument`. Default false: /dev/null.
    bool hold_stdin = false;
    /// A console log that the supervisor keeps for the program (QEMU's
    /// serial console); empty: none. Needs `exit_status_file` (a
    /// supervisor), else `errc::invalid_argument`. Before the program
    /// starts, `spawn_detached` makes a fresh FIFO `console::drain_fifo(log)`
    /// ("<log>.fifo"; the program writes into it: QEMU's chardev
    /// `logfile=`) and a fresh, empty log (removing `console::rotated_log(log)`
    /// of an earlier run). The FIFO has its reader from then on, so the
    /// program's open of it never blocks. While the program runs, the
    /// supervisor copies the FIFO into the log, renaming the log to
    /// `rotated_log(log)` (replacing the one before) instead of letting it
    /// pass `drain_rotate_bytes`, so the console takes at most twice that on
    /// disk; it never stalls the writer for the disk (a write that fails,
    /// ENOSPC after dropping the rotated part, loses that output). Writers
    /// may come and go (only the program's end ends the copy). When the
    /// program has ended, the supervisor copies what is left, removes the
    /// FIFO, then writes `exit_status_file`: from then on the log is
    /// complete (`console::wait_drained` waits for the FIFO to go). A FIFO or
    /// log that cannot be made is `errc::io_error` naming it; a start that
    /// fails leaves no FIFO. Relative: as `stdout_file`.
    std::filesystem::path drain_log;
    /// `drain_log` rotates at this many bytes (after a '\n' when one fits,
    /// see `console::rotation_split`). Default 1 MiB; 0 counts as 1.
    std::uint64_t drain_rotate_bytes = 1024 * 1024;
};

/// A process started by `spawn_detached`, not yet handed over for good.
///
/// A supervised process (one with `detached_options::exit_status_file`)
/// lives on its own only once its starter calls `commit()`. Until then its
/// supervisor holds one end of a socket whose other end is this handle: when
/// the handle is destroyed (or `abandon()`ed) without a commit, or when the
/// starting process dies in any way (SIGKILL, OOM, SIGHUP, a crash: the
/// kernel closes the socket), the supervisor SIGKILLs the program, reaps it
/// and records "signaled 9 abandoned". So a start that fails at any point
/// leaves nothing running. Without a supervisor there is no one to take the
/// process back: it is committed from the start, and `commit()` and
/// destruction do nothing. Move-only.
class detached_process {
public:
    detached_process() noexcept = default;
    detached_process(detached_process&& other) noexcept;
    detached_process& operator=(detached_process&& other) noexcept;
    /// Abandons the process unless it was committed (see above).
    ~detached_process();

    pid_t pid() const noexcept { return pid_; } ///< The program's pid.
    /// Lets the program live on after this handle and this process: sends
    /// the supervisor the commit byte and closes the channel, without
    /// waiting for the supervisor to read it (the byte comes before the
    /// channel's end, so the commit holds even if this process dies right
    /// after). Returns false when the supervisor was gone already (the
    /// program had ended); true otherwise, also without a supervisor.
    /// Idempotent; never throws; never blocks.
    bool commit() noexcept;
    /// `commit()`, as an awaitable for coroutine callers; it completes at
    /// once (cancellation has nothing to interrupt).
    boost::asio::awaitable<bool> hand_over();
    /// Has the supervisor kill the program now, unless committed; returns
    /// at once (it does not wait for the program to end). Idempotent.
    void abandon() noexcept;
    /// True until `commit()` or `abandon()` (false without a supervisor).
    bool pending() const noexcept { return channel_ >= 0; }

private:
    friend struct detached_access;
    detached_process(pid_t pid, int channel) noexcept
        : pid_(pid)
        , channel_(channel) {}
    pid_t pid_ = -1;
    int channel_ = -1; // our end of the commit channel; -1: committed or none
};

/// Starts a process in a new session that is not our child (it is
/// re-parented away at once), so it outlives this process and never becomes
/// our zombie. stdin is /dev/null; only fds 0, 1, 2 are open in it; signal
/// dispositions and mask are the defaults. Returns once it has exec'd (it
/// blocks for that brief moment; not a coroutine); a supervised process must
/// then be committed (see `detached_process`). This process is never
/// forked: localvm's helper `localvm-supervise` is started with
/// posix_spawn, puts itself in the background, and then supervises the
/// program or, without `exit_status_file`, becomes it. So the cost does
/// not grow with this process's size, and the helper is needed either way.
/// Throws `localvm::error`: `errc::invalid_argument` for an empty argv,
/// `errc::not_found` naming a missing program or working directory, or a
/// missing supervisor helper (the path looked at, and `LOCALVM_LIBEXECDIR`),
/// `errc::io_error` naming an output file that cannot be opened,
/// `errc::process_failed` when exec fails for another reason (errno's text).
/// Discarding the result kills a supervised program at once: hence nodiscard.
[[nodiscard]] detached_process spawn_detached(const detached_options& opts);

/// As `spawn_detached`, but the wait until the program has exec'd (three
/// processes and two execs, each to be scheduled: milliseconds on a loaded
/// machine) happens on the caller's io_context instead of blocking the
/// thread, so that many starts overlap. It yields once (a post to the
/// caller's executor) between preparing and spawning, so that launches
/// started at once all prepare first and then spawn back to back; a launch
/// destroyed there leaves nothing behind (its drained log's FIFO goes).
/// Same errors. Cancellation completes with operation_aborted; a
/// supervised program that was started is then killed by its supervisor
/// (never committed).
boost::asio::awaitable<detached_process> launch_detached(detached_options opts);

/// How a supervised process ended, as its supervisor recorded it.
struct exit_status {
    std::string how; ///< "exited" or "signaled".
    int number = 0;  ///< The exit code or the signal number.
    /// The supervisor killed the program because its starter never committed it.
    bool abandoned = false;
};

/// Reads an exit status file written by a supervisor; nullopt when absent
/// or unreadable.
std::optional<exit_status> read_exit_status(const std::filesystem::path& file);

/// True when a process with this pid exists (and is not a zombie, per
/// /proc/<pid>/stat). False for pid <= 0.
bool alive(pid_t pid) noexcept;

/// One process, held by a Linux pidfd from `open` on: signals and waits
/// reach that process, never another one that later got its pid. Move-only;
/// closes the pidfd on destruction.
class pidfd {
public:
    /// Opens a pidfd for `pid`. A pid that does not exist gives a handle
    /// that counts as exited (and signals nothing). Throws
    /// `errc::invalid_argument` for pid <= 0, `errc::unsupported` without
    /// pidfd_open (Linux < 5.3).
    static pidfd open(pid_t pid);

    pidfd(pidfd&& other) noexcept;
    pidfd& operator=(pidfd&& other) noexcept;
    ~pidfd();

    pid_t pid() const noexcept { return pid_; }
    /// True once the process has exited (it may still be its parent's zombie).
    bool exited() const noexcept;
    /// Sends `sig` (pidfd_send_signal). Returns false when the process has
    /// exited already or the signal could not be sent (errno kept).
    bool send_signal(int sig) noexcept;
    /// Waits until the process has exited: true, or false when `timeout`
    /// passed first (a negative one just checks; `no_deadline`: no limit).
    /// No polling: the kernel makes the pidfd readable. Cancellation
    /// completes with operation_aborted.
    boost::asio::awaitable<bool> wait_exit(std::chrono::milliseconds timeout) const;

private:
    pidfd(pid_t pid, int fd) noexcept
        : pid_(pid)
        , fd_(fd) {}
    pid_t pid_ = -1;
    int fd_ = -1; // -1: the process was gone at open
};

/// Waits until process `pid` (any process, not only a child) has exited,
/// as `pidfd::open(pid).wait_exit(timeout)`: true when it exited, false when
/// `timeout` passed first (a negative one just checks; `no_deadline`: no
/// limit). A pid that does not exist counts as exited.
/// Throws `errc::invalid_argument` for pid <= 0, `errc::unsupported` without
/// pidfd_open (Linux < 5.3). Cancellation completes with operation_aborted.
boost::asio::awaitable<bool> wait_exit(pid_t pid, std::chrono::milliseconds timeout);

} // namespace localvm::process
