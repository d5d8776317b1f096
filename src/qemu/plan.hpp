// The pure planning step of `start`: options in, a launch plan and the
// NoCloud seed out, before anything is spawned or written. A second backend
// (libvirt) renders the same plan as domain XML where `command_line`
// renders it as argv.
#pragma once

#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/manager.hpp>
#include <localvm/qemu/arguments.hpp>
#include <localvm/qemu/options.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace localvm::qemu::detail {

/// What `start` launches: the command line's plan and the seed it writes.
struct start_plan {
    /// Every field but `accel`, which the caller resolves (it reads
    /// /dev/kvm and the fallback marker) before rendering the command line.
    launch_plan launch;
    cloudinit::seed seed;
    /// With `launch.uefi`: what the VM's own variable store
    /// (`layout::efi_vars`) starts as when it does not exist yet.
    std::filesystem::path vars_template;
};

/// Throws `errc::invalid_argument` "WHAT: ..." unless `f`'s host address
/// is an IPv4 literal and its guest port is not 0.
void check_forward(const port_forward& f, std::string_view what);

/// Answers whether a regular file is at a path (the host's file system in
/// `start`; a set of names in tests).
using file_probe = std::function<bool(const std::filesystem::path&)>;

/// True when a regular file is at `p` (errors count as no).
bool regular_file_exists(const std::filesystem::path& p);

/// Checks `so` and plans the start of the VM `o` with the files `l`:
/// cpus 1..255, memory as `parse_memory_mib`, each forward's host address an
/// IPv4 literal, guest port not 0 and no host port forwarded twice on one
/// address (all `errc::invalid_argument`); with `so.boot`, kernel and initrd
/// must be files (`errc::not_found`) and are made absolute, the command
/// line normalised; without, the UEFI firmware is looked up
/// (`errc::unsupported` naming the Debian package when `exists` finds
/// none). The seed gets user-data, the instance-id (see `instance_id`),
/// the VM name as local-hostname and the key; its meta-data is validated
/// (throws as `cloudinit::seed_files`). Reads nothing but what `exists`
/// reads; writes nothing.
start_plan plan_start(const options& o, const layout& l, const start_options& so,
                      const file_probe& exists = regular_file_exists);

/// Puts the VM's pinned SSH host key into `plan.seed` (vendor-data) and
/// makes a new instance-id from it, so that cloud-init applies a new key.
/// Throws as `cloudinit::render_host_key_vendor_data`.
void pin_host_key(start_plan& plan, const options& o, const start_options& so,
                  const cloudinit::ssh_host_key& key);

} // namespace localvm::qemu::detail
