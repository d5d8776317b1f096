// Options and results of the QEMU backend's calls through the guest agent
// (`qemu::manager::exec`, `copy_in`, `copy_out`, `wait_ready` by agent):
// a command channel that needs neither the guest's network nor its sshd.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace localvm::qemu {

/// What `manager::wait_ready` waits for.
enum class ready_mode {
    /// The SSH banner on the forward to guest port 22, then a login (when
    /// `options::ssh_identity_file` is set). The default, as before.
    ssh,
    /// The guest agent (qemu-guest-agent in the guest) answering
    /// `guest-ping` on the VM's agent channel; needs no network forward.
    agent,
    /// SSH as `ssh`, then the agent: both within the one timeout.
    both,
};

/// Options for `manager::exec`.
struct exec_options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    exec_options() = default;
    /// How long the program may run, from the call to its exit; zero means
    /// no limit (each agent request is still bounded by 30 s). When it
    /// passes, the guest program is killed (see `manager::exec`) and
    /// `errc::timeout` thrown. Default: none.
    std::chrono::milliseconds timeout{0};
    /// Bytes for the program's stdin (sent to the agent base64-encoded, in
    /// the one `guest-exec` request: keep it well below 48 MiB); none:
    /// stdin is empty. Default: none.
    std::optional<std::string> input;
    /// "NAME=VALUE" entries. When not empty they are the program's whole
    /// environment: the agent does not merge them with its own (so give
    /// PATH too when `argv[0]` has no '/'). Default: empty (the agent's
    /// environment).
    std::vector<std::string> env;
};

/// How a program run by `manager::exec` ended.
struct exec_result {
    /// Its exit status when it exited normally; -1 when a signal ended it.
    int exit_status = -1;
    std::optional<int> signal; ///< The signal that ended it, if one did.
    std::string out;           ///< Its stdout, whole (up to the agent's 16 MiB).
    std::string err;           ///< Its stderr, whole (up to the agent's 16 MiB).
    bool out_truncated = false; ///< The agent dropped stdout past its 16 MiB limit.
    bool err_truncated = false; ///< The agent dropped stderr past its 16 MiB limit.
    std::int64_t pid = 0;       ///< Its pid in the guest.
};

/// Options for `manager::copy_in` and `manager::copy_out`.
struct copy_options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    copy_options() = default;
    /// Bytes per `guest-file-read`/`guest-file-write` request: the most
    /// that is held in memory at once (about 2.3 times that, with the
    /// base64 text and the JSON request). 4 KiB .. 32 MiB, else
    /// `errc::invalid_argument`. Default 1 MiB.
    std::size_t chunk_size = std::size_t(1) << 20;
    /// Limit on the whole copy; zero means none (each agent request is
    /// still bounded by 30 s). Default: none.
    std::chrono::milliseconds timeout{0};
};

} // namespace localvm::qemu
