#include <localvm/error.hpp>
#include <localvm/qemu/arguments.hpp>

#include "hostfwd.hpp"

#include <algorithm>
#include <charconv>

namespace localvm::qemu {

std::string_view to_string(accelerator a) noexcept {
    switch (a) {
    case accelerator::kvm: return "kvm";
    case accelerator::tcg: return "tcg";
    case accelerator::automatic: break;
    }
    return "auto";
}
namespace {

// Splits on blanks; a double-quoted stretch (param="a b") stays in one word.
std::vector<std::string> split_cmdline(std::string_view s) {
    std::vector<std::string> words;
    std::string cur;
    bool quoted = false, any = false;
    for (char c : s) {
        if (c == '"') {
            quoted = !quoted;
            cur += c;
            any = true;
        } else if (!quoted && (c == ' ' || c == '\t' || c == '\n')) {
            if (any)
                words.push_back(std::move(cur));
            cur.clear();
            any = false;
        } else {
            cur += c;
            any = true;
        }
    }
    if (any)
        words.push_back(std::move(cur));
    return words;
}

std::string path_value(const std::filesystem::path& p) { return escape_option_value(p.string()); }

// A size as "<digits>[unit]": the number and the unit letter upper-cased
// (none: nullopt), with an optional "B" or "iB" after the letter ("4GiB").
// nullopt without digits or with more than one unit letter.
struct size_text {
    std::uint64_t number = 0;
    std::optional<char> unit;
};
std::optional<size_text> split_size(std::string_view text) {
    size_text out;
    auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), out.number);
    if (err != std::errc() || end == text.data())
        return std::nullopt;
    std::string suffix(end, text.data() + text.size());
    std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (suffix.size() > 1 && (suffix.substr(1) == "B" || suffix.substr(1) == "IB"))
        suffix.resize(1);
    if (suffix.size() > 1)
        return std::nullopt;
    if (!suffix.empty())
        out.unit = suffix[0];
    return out;
}

} // namespace

std::string escape_option_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        out += c;
        if (c == ',')
            out += ',';
    }
    return out;
}

std::string_view serial_console_device(arch a) noexcept {
    return a == arch::arm64 ? "ttyAMA0" : "ttyS0";
}

std::string normalize_kernel_cmdline(std::string_view cmdline, arch a) {
    std::vector<std::string> kept;
    for (auto& w : split_cmdline(cmdline)) {
        if (w.rfind("BOOT_IMAGE=", 0) == 0 || w == "$vt_handoff")
            continue;
        if (std::find(kept.begin(), kept.end(), w) == kept.end())
            kept.push_back(std::move(w));
    }
    if (std::find(kept.begin(), kept.end(), "rootwait") == kept.end())
        kept.emplace_back("rootwait");
    std::string console = "console=" + std::string(serial_console_device(a));
    bool has_console = std::any_of(kept.begin(), kept.end(), [&](const std::string& w) {
        return w == console || w.rfind(console + ",", 0) == 0;
    });
    if (!has_console)
        kept.push_back(console);
    std::string out;
    for (auto& w : kept) {
        if (!out.empty())
            out += ' ';
        out += w;
    }
    return out;
}

std::optional<std::uint64_t> parse_memory_mib(std::string_view text,
                                              boost::system::error_code& ec) {
    ec = make_error_code(errc::invalid_argument);
    auto size = split_size(text);
    if (!size)
        return std::nullopt;
    const std::uint64_t n = size->number;
    std::uint64_t kib_per_unit = 0;
    if (!size->unit || size->unit == 'M')
        kib_per_unit = 1024;
    else if (size->unit == 'K')
        kib_per_unit = 1;
    else if (size->unit == 'G')
        kib_per_unit = 1024ull * 1024;
    else if (size->unit == 'T')
        kib_per_unit = 1024ull * 1024 * 1024;
    else
        return std::nullopt;
    constexpr std::uint64_t max_kib = 16ull * 1024 * 1024 * 1024; // 16 TiB
    if (n > max_kib / kib_per_unit)
        return std::nullopt;
    std::uint64_t kib = n * kib_per_unit;
    if (kib % 1024 != 0 || kib < 16 * 1024)
        return std::nullopt;
    ec = {};
    return kib / 1024;
}

std::optional<std::uint64_t> parse_disk_size(std::string_view text, boost::system::error_code& ec) {
    ec = make_error_code(errc::invalid_argument);
    auto size = split_size(text);
    if (!size || size->number == 0)
        return std::nullopt;
    const std::uint64_t n = size->number;
    static constexpr std::string_view units = "KMGTPE";
    unsigned shift = 0;
    if (size->unit && units.find(*size->unit) != std::string_view::npos)
        shift = 10 * static_cast<unsigned>(units.find(*size->unit) + 1);
    else if (size->unit)
        return std::nullopt;
    if (n >= (std::uint64_t{1} << (63 - shift)))
        return std::nullopt;
    ec = {};
    return n << shift;
}

std::vector<std::string> command_line(const launch_plan& p) {
    const bool arm = p.architecture == arch::arm64;
    std::vector<std::string> a;
    auto add = [&](std::initializer_list<std::string> words) {
        a.insert(a.end(), words.begin(), words.end());
    };
    a.push_back(p.qemu_binary.string());
    add({"-name", "guest=" + escape_option_value(p.name)});
    std::string machine = p.machine.empty() ? (arm ? "virt" : "q35") : p.machine;
    add({"-machine", arm ? machine + ",gic-version=max" : machine});
    add({"-accel", std::string(to_string(p.accel))});
    add({"-cpu", p.accel == accelerator::kvm ? "host" : "max"});
    add({"-smp", std::to_string(p.cpus)});
    add({"-m", std::to_string(p.memory_mib) + "M"});
    add({"-nodefaults", "-no-user-config", "-display", "none"});
    if (p.paused)
        a.push_back("-S");
    if (p.incoming)
        add({"-incoming", "defer"});
    add({"-chardev", "socket,id=qmp,path=" + path_value(p.qmp_socket) + ",server=on,wait=off"});
    add({"-mon", "chardev=qmp,mode=control"});
    for (std::size_t i = 0; i < p.extra_qmp_sockets.size(); ++i) {
        auto id = "qmp" + std::to_string(i + 1);
        add({"-chardev", "socket,id=" + id + ",path=" + path_value(p.extra_qmp_sockets[i]) +
                             ",server=on,wait=off"});
        add({"-mon", "chardev=" + id + ",mode=control"});
    }
    add({"-chardev", "socket,id=serial0,path=" + path_value(p.console_socket) +
                         ",server=on,wait=off,logfile=" + path_value(p.console_log) +
                         ",logappend=on"});
    add({"-serial", "chardev:serial0"});
    if (!p.agent_socket.empty()) {
        add({"-chardev",
             "socket,id=qga0,path=" + path_value(p.agent_socket) + ",server=on,wait=off"});
        add({"-device", "virtio-serial-pci"});
        add({"-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0,id=" +
                            std::string(agent_port_device_id)});
    }
    add({"-drive", "file=" + path_value(p.disk) + ",if=virtio,format=qcow2,discard=unmap"});
    if (!p.seed.empty())
        add({"-drive", "file=" + path_value(p.seed) + ",if=virtio,format=raw,readonly=on"});
    std::string nic = "user,model=virtio-net-pci";
    if (p.net == network::restricted)
        nic += ",restrict=on";
    for (const auto& f : p.ports)
        nic += ",hostfwd=tcp:" + f.host_address + ":" + std::to_string(f.host_port) + "-:" +
               std::to_string(f.guest_port);
    if (!p.nics.empty())
        nic += ",mac=" + std::string(user_nic_mac);
    add({"-nic", nic});
    for (const auto& v : p.nics) {
        add({"-netdev", "vde,id=" + v.id + "-net,sock=" + path_value(v.switch_dir)});
        add({"-device", "virtio-net-pci,netdev=" + v.id + "-net,id=" + v.id + ",mac=" + v.mac});
    }
    add({"-device", "virtio-rng-pci"});
    // A guest kernel panic makes QEMU exit (status 1) instead of rebooting
    // or hanging: waiters fail fast and the end is recorded as a crash.
    add({"-device", arm ? "pvpanic-pci" : "pvpanic"});
    add({"-action", "panic=exit-failure"});
    if (p.boot) {
        add({"-kernel", p.boot->kernel.string()});
        if (!p.boot->initrd.empty())
            add({"-initrd", p.boot->initrd.string()});
        add({"-append", p.boot->cmdline});
    } else if (p.uefi) {
        add({"-drive",
             "if=pflash,format=raw,unit=0,readonly=on,file=" + path_value(p.uefi->code)});
        add({"-drive", "if=pflash,format=raw,unit=1,file=" + path_value(p.uefi->vars)});
    }
    add({"-pidfile", p.pidfile.string()});
    switch (p.monitor) {
    case monitor_mode::none:
        break;
    case monitor_mode::stdio:
        add({"-monitor", "stdio"});
        break;
    case monitor_mode::socket:
        add({"-chardev",
             "socket,id=hmp,path=" + path_value(p.monitor_socket) + ",server=on,wait=off"});
        add({"-mon", "chardev=hmp,mode=readline"});
        break;
    }
    return a;
}

std::optional<std::vector<std::uint16_t>>
parse_usernet_ports(std::string_view text, const std::vector<port_forward>& wanted) {
    auto listed = detail::parse_usernet_forwards(text);
    std::vector<bool> used(listed.size(), false);
    std::vector<std::uint16_t> ports;
    for (const auto& w : wanted) {
        std::size_t i = 0;
        while (i < listed.size() &&
               (used[i] || listed[i].host_address != w.host_address ||
                listed[i].guest_port != w.guest_port ||
                (w.host_port != 0 && listed[i].host_port != w.host_port)))
            ++i;
        if (i == listed.size())
            return std::nullopt;
        used[i] = true;
        ports.push_back(listed[i].host_port);
    }
    return ports;
}

} // namespace localvm::qemu
