// Choosing the accelerator: KVM where it really works, TCG otherwise.
#pragma once

#include <localvm/qemu/arguments.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace localvm::qemu {

/// The accelerator to run with, and why it was chosen.
struct accel_choice {
    accelerator accel = accelerator::tcg; ///< kvm or tcg, never automatic.
    std::string reason;                   ///< One line for logs, e.g. "/dev/kvm: Permission denied".
    bool watch_boot = false;              ///< KVM chosen by `automatic`: start must watch the boot.
};

/// Checks that KVM can run a guest of architecture `a` here: the host
/// architecture matches, /dev/kvm opens read-write, KVM_GET_API_VERSION is
/// 12 and KVM_CREATE_VM succeeds. Returns "" when usable, else the reason.
std::string kvm_problem(arch a);

/// Resolves `requested`:
/// - `tcg` stays tcg; `kvm` is checked with `kvm_problem` and throws
///   `errc::unsupported` naming the reason when KVM cannot work.
/// - `automatic`: the environment variable `LOCALVM_ACCEL` ("kvm"/"tcg")
///   wins when set; else TCG when `kvm_problem` reports one or when
///   `hang_marker` exists (an earlier automatic start saw KVM hang); else
///   KVM with `watch_boot` set. A KVM that opens but hangs real kernels is
///   common in nested setups, so `start` then watches for console output
///   and, when none comes within its watchdog time or when QEMU fails with
///   an error that names KVM (`names_kvm_failure`; e.g. a host that rejects
///   `-cpu host` MSRs), restarts with TCG and creates `hang_marker` (with
///   the reason) so later starts go straight to TCG. Any other failure (a
///   port in use, a locked disk) fails the start and leaves KVM chosen.
accel_choice resolve_accelerator(accelerator requested, arch a,
                                 const std::filesystem::path& hang_marker);

/// Whether QEMU's output (its stderr) says KVM itself failed: a line naming
/// the KVM module or API ("Could not access KVM kernel module", "failed to
/// initialize kvm", "kvm_init_vcpu failed", "KVM_CREATE_VM", "kvm run
/// failed", "KVM internal error", "-accel kvm: ...", "requires KVM",
/// `kvm_*` functions in assertions, "failed to set MSR"). A mere mention of
/// the letters (a path like /srv/kvm/disk.qcow2, a VM named kvm-1) does not
/// count. Case-insensitive; pure.
bool names_kvm_failure(std::string_view qemu_output) noexcept;

} // namespace localvm::qemu
