#include "plan.hpp"

#include "firmware.hpp"
#include "instance_id.hpp"

#include <localvm/console/drain.hpp>
#include <localvm/error.hpp>

#include <arpa/inet.h>
#include <set>
#include <utility>

namespace localvm::qemu::detail {
namespace fs = std::filesystem;

namespace {

void check_counts(const start_options& so) {
    if (so.cpus < 1 || so.cpus > 255)
        throw_error(errc::invalid_argument,
                    "cpus: " + std::to_string(so.cpus) + " is outside 1..255");
}

std::uint64_t checked_memory_mib(const start_options& so) {
    boost::system::error_code ec;
    auto mib = parse_memory_mib(so.memory, ec);
    if (!mib)
        throw_error(errc::invalid_argument,
                    "memory: \"" + so.memory +
                        "\" is not a size like 512M or 4G (at least 16M, whole MiB)");
    return *mib;
}

void check_forwards(const std::vector<port_forward>& ports) {
    std::set<std::pair<std::string, std::uint16_t>> bound;
    for (const auto& p : ports) {
        check_forward(p, "port forward");
        if (p.host_port != 0 && !bound.insert({p.host_address, p.host_port}).second)
            throw_error(errc::invalid_argument, "port forward: host port " +
                                                    std::to_string(p.host_port) +
                                                    " is forwarded twice");
    }
}

direct_boot checked_boot(direct_boot b, arch a, const file_probe& exists) {
    if (!exists(b.kernel))
        throw_error(errc::not_found, "kernel " + b.kernel.string() + " does not exist");
    if (!b.initrd.empty() && !exists(b.initrd))
        throw_error(errc::not_found, "initrd " + b.initrd.string() + " does not exist");
    b.kernel = fs::absolute(b.kernel);
    if (!b.initrd.empty())
        b.initrd = fs::absolute(b.initrd);
    b.cmdline = normalize_kernel_cmdline(b.cmdline, a);
    return b;
}

// A new pinned host key gives a new id, so that cloud-init applies it.
std::string seed_instance_id(const options& o, const start_options& so,
                             const std::string& host_key = {}) {
    return instance_id(o.name, so.user_data,
                       host_key.empty() ? so.ssh_authorized_key
                                        : so.ssh_authorized_key + '\n' + host_key);
}

} // namespace

void check_forward(const port_forward& f, std::string_view what) {
    in_addr addr{};
    if (::inet_pton(AF_INET, f.host_address.c_str(), &addr) != 1)
        throw_error(errc::invalid_argument, std::string(what) + ": host address \"" +
                                                f.host_address + "\" is not an IPv4 address");
    if (f.guest_port == 0)
        throw_error(errc::invalid_argument, std::string(what) + ": guest port 0");
}

bool regular_file_exists(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

start_plan plan_start(const options& o, const layout& l, const start_options& so,
                      const file_probe& exists) {
    start_plan out;
    launch_plan& plan = out.launch;
    check_counts(so);
    plan.memory_mib = checked_memory_mib(so);
    check_forwards(so.ports);
    if (so.boot) {
        plan.boot = checked_boot(*so.boot, o.architecture, exists);
    } else {
        std::string package;
        auto found = find_firmware(o.architecture, package, exists);
        if (!found)
            throw_error(errc::unsupported, "firmware boot needs UEFI firmware; install the " +
                                               package + " package (or use direct boot)");
        plan.uefi = firmware{found->code, l.efi_vars};
        out.vars_template = found->vars_template;
    }

    plan.name = o.name;
    plan.architecture = o.architecture;
    plan.qemu_binary = o.qemu_binary;
    plan.cpus = so.cpus;
    plan.disk = l.disk;
    plan.seed = l.seed;
    plan.net = o.net;
    plan.ports = so.ports;
    plan.qmp_socket = l.qmp_socket;
    plan.extra_qmp_sockets = l.extra_qmp_sockets;
    plan.console_socket = l.console_socket;
    plan.agent_socket = l.agent_socket;
    // QEMU logs the console into a FIFO; its supervisor keeps console.log bounded.
    plan.console_log = console::drain_fifo(l.console_log);
    plan.pidfile = l.pidfile;
    // QEMU runs detached, so its stdio is no terminal: the human monitor
    // goes on a socket that attach_monitor (from any process) connects to.
    plan.monitor = so.monitor ? monitor_mode::socket : monitor_mode::none;
    plan.monitor_socket = l.monitor_socket;

    cloudinit::seed& seed = out.seed;
    seed.user_data = so.user_data;
    seed.meta.instance_id = seed_instance_id(o, so);
    seed.meta.local_hostname = o.name;
    if (!so.ssh_authorized_key.empty())
        seed.meta.public_keys.push_back(so.ssh_authorized_key);
    cloudinit::seed_files(seed); // validates meta-data before anything is touched
    return out;
}

void pin_host_key(start_plan& plan, const options& o, const start_options& so,
                  const cloudinit::ssh_host_key& key) {
    plan.seed.vendor_data = cloudinit::render_host_key_vendor_data(key);
    plan.seed.meta.instance_id = seed_instance_id(o, so, key.public_key);
}

} // namespace localvm::qemu::detail
