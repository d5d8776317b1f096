// Finding what a test left behind: fds, child processes and zombies, stray
// processes (a QEMU) working on a test's directories, and unix socket files.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace localvm::testing {

/// One open file descriptor of this process.
struct open_fd {
    int fd = -1;        ///< The descriptor number.
    std::string target; ///< Its /proc/self/fd link: a path, "socket:[inode]", "pipe:[inode]", ...
};

/// One process as /proc shows it.
struct process_info {
    pid_t pid = 0;            ///< Process id.
    pid_t ppid = 0;           ///< Parent's process id.
    char state = '?';         ///< /proc state letter: 'R', 'S', 'Z' (zombie), ...
    std::string name;         ///< The kernel's short name (`comm`, at most 15 characters).
    std::string command_line; ///< argv joined by spaces; empty for zombies and kernel threads.
};

/// This process's resources at one moment: its open fds and its children.
struct resource_snapshot {
    std::vector<open_fd> fds;           ///< Sorted by fd; the fd used to read /proc is not listed.
    std::vector<process_info> children; ///< Processes whose parent is this one, zombies included.

    /// Reads /proc/self/fd and /proc/*/stat now. Throws `localvm::error`
    /// (`errc::io_error`) when /proc cannot be read.
    static resource_snapshot take();
};

/// What `find_leaks` looks for beyond this process's own fds and children.
struct leak_check_options {
    /// Directories a test worked in. A process other than this one whose
    /// command line names a path in one of them (a QEMU given its disk or
    /// sockets there, a qemu-img, an ssh) is reported, and so is every
    /// unix socket file below them. Default none.
    std::vector<std::filesystem::path> directories;
};

/// What was left behind since a snapshot.
struct leak_report {
    std::vector<open_fd> fds;                   ///< Opened since the snapshot and still open.
    std::vector<process_info> children;         ///< New children, running or unreaped zombies.
    std::vector<process_info> processes;        ///< Other processes naming a watched directory.
    std::vector<std::filesystem::path> sockets; ///< Unix socket files below a watched directory.

    /// True when nothing was left behind.
    bool clean() const noexcept;
    /// One line per leak, naming it ("fd 7 -> socket:[4711] is still open",
    /// "zombie child 123 (ssh) was never reaped", "process 456
    /// (qemu-system-x86) still runs: qemu-system-x86_64 -name ...", "socket
    /// /tmp/x/qmp.sock is left behind"); "" when clean.
    std::string describe() const;
};

/// Compares the present with `before`: fds open now that were not open
/// then (or whose number now names something else), children that were
/// not there then, and the processes and sockets of `opts.directories`
/// (see `leak_check_options`). Reports; changes nothing. Throws
/// `localvm::error` (`errc::io_error`) when /proc cannot be read.
leak_report find_leaks(const resource_snapshot& before, const leak_check_options& opts = {});

} // namespace localvm::testing
