// The libvirt domain XML for a launch plan: the QEMU backend's planning step
// (qemu/plan.hpp) rendered as XML where `qemu::command_line` renders it as
// argv. Pure: no daemon, no files.
#pragma once

#include <localvm/qemu/arguments.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace localvm::libvirt::detail {

/// The id of the user-mode netdev in the passthrough arguments.
inline constexpr std::string_view user_netdev_id = "localvm-net0";

/// The domain XML for `plan`: type `qemu` (TCG) or `kvm`; name; memory in
/// MiB; vcpus; `<cpu mode='maximum'>` (TCG) or `host-passthrough` (KVM);
/// q35 (amd64) or virt (arm64), or `plan.machine`; direct kernel boot
/// (kernel, initrd, cmdline) or UEFI (`<loader readonly='yes'
/// type='pflash'>` and `<nvram>`); ACPI; the overlay as virtio disk vda
/// (qcow2) and the seed as read-only virtio disk vdb (raw); the serial
/// console on a pty, logged to `plan.console_log` when set; a virtio RNG;
/// the pvpanic device (amd64) with `on_crash` destroy; no USB, no balloon,
/// no graphics. `<emulator>` only when `plan.qemu_binary` is absolute
/// (else libvirt's default for the architecture).
///
/// User-mode networking with the forwards goes through QEMU command-line
/// passthrough (`<qemu:commandline>`): `-netdev user,id=localvm-net0[,
/// restrict=on],hostfwd=tcp:ADDR:PORT-:GUEST... -device
/// {"driver":"virtio-net-pci","netdev":"localvm-net0"}`, because libvirt 9.0's `<interface
/// type='user'>` forwards ports only with the passt backend, which takes no port 0 (QEMU picks a
/// free one; `info usernet` tells which). `plan.pidfile`, when set, is passed as `-pidfile` (QEMU
/// holds its lock: a local reader learns the pid as with the QEMU backend).
///
/// Every text is XML-escaped (`& < > " '`, tab, LF and CR as character
/// references). Ignores the plan's QMP, console, agent and monitor sockets
/// and `paused` (libvirt owns QEMU's monitor and console). Throws
/// `errc::invalid_argument` naming the field when a text is not UTF-8 or
/// holds a control character XML cannot carry, `errc::unsupported` for
/// virtual NICs or `incoming`.
std::string domain_xml(const qemu::launch_plan& plan);

/// `text` escaped for XML character data and attribute values (either
/// quote). Throws `errc::invalid_argument` "WHAT: ..." for text that is
/// not UTF-8 or holds a C0 control character other than tab, LF and CR.
std::string xml_escape(std::string_view text, std::string_view what);

} // namespace localvm::libvirt::detail
