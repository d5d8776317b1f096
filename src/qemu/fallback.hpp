// What `start` says about its accelerator: the spawn's detail and the
// reason for a KVM -> TCG restart, for the boot timeline, the log and the
// state file. Pure.
#pragma once

#include <localvm/qemu/accel.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include <sys/types.h>

namespace localvm::qemu::detail {

/// The `boot_stage::qemu_spawned` detail: "pid 123, kvm attempt (/dev/kvm
/// is usable; tcg if the guest stays silent for 20 s)" for a KVM that
/// automatic picked and watches, else "pid 123, tcg (REASON)".
std::string spawned_detail(pid_t pid, const accel_choice& choice,
                           std::chrono::milliseconds watchdog);

/// Why automatic acceleration gave up on KVM, one line: "no console output
/// within 20 s" when the watchdog fired (`error` empty); else the first line
/// of `qemu_output` (QEMU's stderr) that names a KVM failure
/// (`names_kvm_failure`), or failing that the first line of `error`.
/// Control characters become spaces.
std::string fallback_reason(std::string_view error, std::string_view qemu_output,
                            std::chrono::milliseconds watchdog);

} // namespace localvm::qemu::detail
