// Internal: the async-signal-safe side of starting a program, the code that
// runs between fork and exec. Plain system calls on memory prepared before
// the fork: no allocation, no locks, no exceptions. Apart from exec.hpp
// (which builds the exec in the parent, with Boost.Process and the standard
// library) so that localvm's helper programs (src/libexec) link it alone.
#pragma once

#include <cstddef>

#include "sys/signals.hpp"

#include <sys/types.h>

namespace localvm::process::detail {

/// What failed between fork and exec; sent to the parent through a CLOEXEC pipe.
enum class exec_stage : int {
    none = 0,
    exec,
    chdir,
    stdio,
    open_stdout,
    open_stderr,
    fork,
    lock, ///< `detached_options::lock_file` could not be opened or locked.
    helper, ///< localvm's supervisor helper program could not be exec'd.
};

/// A fixed-size record written atomically (< PIPE_BUF) to the report pipe.
struct exec_report {
    int tag = 0;   ///< 'E' error (stage, err) or 'P' pid (value).
    int stage = 0; ///< exec_stage for 'E'.
    int value = 0; ///< errno for 'E', the pid for 'P'.
};

/// In a forked child: writes `r` to `fd`, retrying on EINTR. Async-signal-safe.
void write_report(int fd, const exec_report& r) noexcept;

/// In a forked child: dups `fds[i]` onto i for each i in 0..2 whose entry is
/// >= 0 (safe when a source is itself 0..2), clearing close-on-exec. Returns
/// false (errno set) on failure. Async-signal-safe.
bool install_stdio(int fds[3]) noexcept;

using sys::reset_signals; ///< See sys/signals.hpp.

/// In a forked child: marks every fd >= 3 close-on-exec (the report pipe
/// stays usable until exec). Async-signal-safe.
void close_fds_on_exec() noexcept;

/// As above, but the `n` fds of `keep` (sorted ascending) are left as they
/// are: they stay open across exec unless already close-on-exec.
/// Async-signal-safe.
void close_fds_on_exec(const int* keep, std::size_t n) noexcept;

/// In a forked child: chdir to `cwd` (if not null), mark every fd >= 3 but
/// `keep_fd` close-on-exec, execve. Returns only on failure, having written
/// an 'E' report (stage chdir or exec) to `report_fd`. Async-signal-safe.
void exec_or_report(const char* path, char* const* argv, char* const* envp, const char* cwd,
                    int report_fd, int keep_fd = -1) noexcept;

} // namespace localvm::process::detail
