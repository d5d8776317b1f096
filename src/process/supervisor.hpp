// Internal: what runs in localvm's helper program `localvm-supervise`
// (src/libexec), exec'd so that it holds none of the starter's memory: the
// program's own setup before exec (stdio, lock file), and the supervisor.
// Plain system calls on memory prepared beforehand: no allocation, usable
// between (v)fork and exec.
#pragma once

namespace localvm::console::detail {
struct drain_state;
}

namespace localvm::process::detail {

/// A program to start, and how. Every path is absolute; null means none.
struct supervised_program {
    const char* path = nullptr;  ///< What execve runs (PATH already searched).
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    const char* cwd = nullptr;   ///< Null: the working directory is inherited.
    const char* stdout_path = nullptr; ///< Appended to (created 0600); null: /dev/null.
    const char* stderr_path = nullptr;
    const char* lock_path = nullptr;   ///< Held with an fcntl write lock across exec.
    const char* status_path = nullptr; ///< The supervisor's record of how it ended.
    const char* status_tmp = nullptr;  ///< `status_path` + ".tmp", written then renamed.
    bool hold_stdin = false;           ///< stdin: a pipe the supervisor keeps silent.
    /// A console log the supervisor copies from its FIFO while the program
    /// runs (console/drain_child.hpp); null: none. Its fds are the
    /// supervisor's own: the program holds none of them.
    console::detail::drain_state* drain = nullptr;
};

/// What a child about to exec the program must do for its signals.
enum class inherited_signals {
    unknown,       ///< Anything (the helper's own, as `--detach` execs: posix_spawn left
                   ///< glibc's 32 and 33 ignored): every disposition reset, mask emptied.
    only_sigpipe,  ///< The supervisor's: all default but SIGPIPE ignored, mask empty.
};

/// In a forked (or vforked) child: stdio (`stdin_fd`, or /dev/null when
/// < 0; the output files), the lock file, default signals (as `sigs` says
/// what is to undo), then exec. Failures are 'E' reports on `report_fd`
/// (stages open_stdout, open_stderr, stdio, lock, chdir, exec). Never
/// returns.
[[noreturn]] void exec_program(const supervised_program& p, int report_fd, int stdin_fd = -1,
                               inherited_signals sigs = inherited_signals::unknown) noexcept;

/// The supervisor: vforks the program, reports its pid ('P') or why it could
/// not exec ('E') on `report_fd` and closes it, then, in one poll loop until
/// the program has ended: reads the starter's commit byte 'C' on
/// `commit_fd` (its end without one: SIGKILL the program), and copies the
/// console FIFO into its log (`p.drain`). Then it copies what the FIFO
/// still holds, removes it, and writes how the program ended to
/// `p.status_path` ("exited N", "signaled N", "... abandoned"): once that
/// file is there, the log is complete. Holds only fds 0..2 (/dev/null),
/// `report_fd`, `commit_fd` and the drain's; sits in "/". Never returns.
[[noreturn]] void supervise(const supervised_program& p, int report_fd, int commit_fd) noexcept;

} // namespace localvm::process::detail
