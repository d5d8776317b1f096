// The value types of commands and copies in a guest: one set, used by
// `localvm::manager::shell/sync`, `ssh::shell/sync` and the test kit.
#pragma once

#include <localvm/output.hpp>
#include <localvm/wait.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <unistd.h>

namespace localvm {

/// How `shell` runs a command and treats its output.
struct shell_options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    shell_options() = default;
    /// Deadline for the whole command. When it passes the command's ssh is
    /// terminated and `errc::timeout` is thrown. Default `no_deadline`.
    std::chrono::milliseconds timeout = no_deadline;
    /// Receives stdout lines as they arrive. Unset (the default): stdout is
    /// captured into `shell_result::output`.
    line_sink out;
    /// Receives stderr lines as they arrive. Unset (the default): stderr is
    /// captured into `shell_result::output`, interleaved with stdout by line.
    line_sink err;
    /// Bytes of `shell_result::output` kept (the first ones). Default 16 MiB.
    std::size_t capture_limit = 16u << 20;
    /// The terminal of an interactive session (an empty command): keystrokes
    /// are read from `input_fd`, output goes to `output_fd` and `error_fd`
    /// (e.g. the slave side of a pty, as a test or a terminal multiplexer
    /// has). Defaults: the caller's stdin, stdout and stderr. Not closed; ssh
    /// puts a terminal `input_fd` in raw mode and restores it. Unused when a
    /// command is given.
    int input_fd = STDIN_FILENO;
    int output_fd = STDOUT_FILENO; ///< See `input_fd`.
    int error_fd = STDERR_FILENO;  ///< See `input_fd`.
};

/// How a remote command ended.
struct shell_result {
    int exit_status = 0;    ///< The remote command's exit status (0..254).
    std::string output;     ///< Captured lines, each ending in '\n' (see `shell_options`).
    bool truncated = false; ///< Output beyond `capture_limit` was dropped.
};

/// Which way `sync` copies.
enum class sync_direction {
    to_guest,   ///< `from` is a host path, `to` a guest path (the default).
    from_guest, ///< `from` is a guest path, `to` a host path.
};

/// How `sync` copies (rsync over ssh).
struct sync_options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    sync_options() = default;
    /// "--chown=USER:GROUP" for the copied files; empty (default) keeps owners.
    /// It applies on the receiving side: on the host it takes effect only as
    /// far as the local user may chown.
    std::string chown;
    /// One "--exclude=PATTERN" each; empty patterns are dropped.
    std::vector<std::string> excludes;
    /// The guest's rsync command (--rsync-path), either way. Default
    /// "sudo rsync", so files can be written anywhere; the guest user needs
    /// password-less sudo.
    std::string rsync_path = "sudo rsync";
    /// Pass --delete: remove files on the receiving side absent from `from`.
    /// Default false.
    bool delete_extraneous = false;
    /// Receives rsync's stdout and stderr lines; unset: a manager's output
    /// sink (`set_output`), or discarded by `ssh::sync` (the stderr tail still
    /// goes into error diagnostics).
    line_sink output;
    /// Deadline for the whole transfer. Default `no_deadline`.
    std::chrono::milliseconds timeout = no_deadline;
    /// Which way to copy. Default `sync_direction::to_guest`. `chown` and
    /// `excludes` mean the same either way.
    sync_direction direction = sync_direction::to_guest;
};

} // namespace localvm
