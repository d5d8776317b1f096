// Moments of a VM's boot, reported as they happen: for progress displays
// and boot timelines.
#pragma once

#include <functional>
#include <string_view>

namespace localvm::qemu {

/// A moment in bringing a VM up, in the order they normally happen.
enum class boot_stage {
    /// QEMU was spawned (paused). The detail names the pid, the accelerator
    /// and why it was chosen: "pid 123, kvm attempt (/dev/kvm is usable; tcg
    /// if the guest stays silent for 20 s)", "pid 124, tcg (after KVM failed)".
    qemu_spawned,
    qmp_ready,     ///< QEMU's QMP monitor answered.
    guest_running, ///< The guest's CPUs were started (`cont`): the guest boots from here.
    ssh_banner,    ///< The guest's SSH server sent its identification line.
    ssh_login,     ///< A login with `options::ssh_identity_file` worked.
    /// Automatic acceleration gave up on KVM and ends that QEMU; the detail
    /// is the reason ("no console output within 20 s", QEMU's error naming
    /// KVM). A `qemu_spawned` under TCG follows. Comes after whichever of
    /// the stages above the KVM attempt reached.
    kvm_fallback,
    agent_ready,   ///< The guest agent answered (`wait_ready` with `ready_mode::agent` or `both`).
    /// A clone's start only, right after `guest_running` (with
    /// `manager::start_and_wait_ready`, while SSH comes up: it may follow
    /// `ssh_banner` or `ssh_login`): the restored
    /// guest clock reads the time of the save, and was set to the host's
    /// time through the guest agent when the guest has one with its port
    /// open. The detail says which: "set to the host's time through the
    /// guest agent", or "not set: " and why (no guest agent has its port
    /// open; the agent failed, with its error).
    guest_clock,
};

/// The stable word for a stage: "qemu-spawned", "qmp-ready",
/// "guest-running", "ssh-banner", "ssh-login", "kvm-fallback", "agent-ready",
/// "guest-clock".
std::string_view to_string(boot_stage s) noexcept;

/// Receives each stage as it happens, with a detail for people ("pid 1234",
/// the SSH banner, ...; may be empty). Called on the io_context's thread,
/// synchronously from the lifecycle call; it must not block. If it throws,
/// the call fails with that exception (`start` first ends the QEMU it spawned).
using stage_sink = std::function<void(boot_stage stage, std::string_view detail)>;

} // namespace localvm::qemu
