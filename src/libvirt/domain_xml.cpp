#include "domain_xml.hpp"

#include <localvm/error.hpp>

#include "detail/utf8.hpp"

namespace localvm::libvirt::detail {
namespace {

using qemu::accelerator;
using qemu::arch;

// Builds the document line by line with two-space indentation.
class doc {
public:
    void line(int depth, std::string_view text) {
        out_.append(static_cast<std::size_t>(depth) * 2, ' ');
        out_ += text;
        out_ += '\n';
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

std::string esc(const std::filesystem::path& p, std::string_view what) {
    return xml_escape(p.native(), what);
}

} // namespace

std::string xml_escape(std::string_view text, std::string_view what) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t start = pos;
        auto cp = localvm::detail::next_code_point(text, pos);
        if (!cp)
            throw_error(errc::invalid_argument,
                        std::string(what) + ": not UTF-8 at byte " + std::to_string(start));
        switch (*cp) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&apos;";
            break;
        // In attribute values a parser turns raw tab, LF and CR into spaces.
        case '\t':
            out += "&#9;";
            break;
        case '\n':
            out += "&#10;";
            break;
        case '\r':
            out += "&#13;";
            break;
        default:
            if (*cp < 0x20)
                throw_error(errc::invalid_argument, std::string(what) + ": control character " +
                                                        std::to_string(static_cast<unsigned>(*cp)) +
                                                        " at byte " + std::to_string(start) +
                                                        " (XML cannot carry it)");
            out.append(text.substr(start, pos - start));
        }
    }
    return out;
}

std::string domain_xml(const qemu::launch_plan& p) {
    if (!p.nics.empty())
        throw_error(errc::unsupported, "libvirt domain: virtual networks are not supported");
    if (p.incoming)
        throw_error(errc::unsupported, "libvirt domain: an incoming migration is not supported");
    const bool arm = p.architecture == arch::arm64;
    const bool kvm = p.accel == accelerator::kvm;
    doc d;
    d.line(0, std::string("<domain type='") + (kvm ? "kvm" : "qemu") +
                  "' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>");
    d.line(1, "<name>" + xml_escape(p.name, "name") + "</name>");
    d.line(1, "<memory unit='MiB'>" + std::to_string(p.memory_mib) + "</memory>");
    d.line(1, "<vcpu>" + std::to_string(p.cpus) + "</vcpu>");
    d.line(1, "<os>");
    const std::string machine = p.machine.empty() ? (arm ? "virt" : "q35") : p.machine;
    d.line(2, std::string("<type arch='") + (arm ? "aarch64" : "x86_64") + "' machine='" +
                  xml_escape(machine, "machine") + "'>hvm</type>");
    if (p.boot) {
        d.line(2, "<kernel>" + esc(p.boot->kernel, "kernel") + "</kernel>");
        if (!p.boot->initrd.empty())
            d.line(2, "<initrd>" + esc(p.boot->initrd, "initrd") + "</initrd>");
        d.line(2, "<cmdline>" + xml_escape(p.boot->cmdline, "kernel command line") + "</cmdline>");
    } else if (p.uefi) {
        d.line(2, "<loader readonly='yes' type='pflash'>" + esc(p.uefi->code, "UEFI code") +
                      "</loader>");
        d.line(2, "<nvram>" + esc(p.uefi->vars, "UEFI variables") + "</nvram>");
    }
    d.line(1, "</os>");
    d.line(1, "<features>");
    d.line(2, "<acpi/>");
    if (arm)
        d.line(2, "<gic version='max'/>");
    d.line(1, "</features>");
    d.line(1, kvm ? "<cpu mode='host-passthrough'/>" : "<cpu mode='maximum'/>");
    d.line(1, "<clock offset='utc'/>");
    d.line(1, "<on_poweroff>destroy</on_poweroff>");
    d.line(1, "<on_reboot>restart</on_reboot>");
    d.line(1, "<on_crash>destroy</on_crash>");
    d.line(1, "<devices>");
    if (p.qemu_binary.is_absolute())
        d.line(2, "<emulator>" + esc(p.qemu_binary, "QEMU binary") + "</emulator>");
    d.line(2, "<disk type='file' device='disk'>");
    d.line(3, "<driver name='qemu' type='qcow2' discard='unmap'/>");
    d.line(3, "<source file='" + esc(p.disk, "disk") + "'/>");
    d.line(3, "<target dev='vda' bus='virtio'/>");
    d.line(2, "</disk>");
    if (!p.seed.empty()) {
        d.line(2, "<disk type='file' device='disk'>");
        d.line(3, "<driver name='qemu' type='raw'/>");
        d.line(3, "<source file='" + esc(p.seed, "seed") + "'/>");
        d.line(3, "<target dev='vdb' bus='virtio'/>");
        d.line(3, "<readonly/>");
        d.line(2, "</disk>");
    }
    d.line(2, "<controller type='usb' model='none'/>");
    d.line(2, "<serial type='pty'>");
    if (!p.console_log.empty())
        d.line(3, "<log file='" + esc(p.console_log, "console log") + "' append='on'/>");
    d.line(3, "<target port='0'/>");
    d.line(2, "</serial>");
    d.line(2, "<console type='pty'>");
    d.line(3, "<target type='serial' port='0'/>");
    d.line(2, "</console>");
    d.line(2, "<rng model='virtio'>");
    d.line(3, "<backend model='random'>/dev/urandom</backend>");
    d.line(2, "</rng>");
    if (!arm)
        d.line(2, "<panic model='isa'/>");
    d.line(2, "<memballoon model='none'/>");
    d.line(1, "</devices>");

    // Option values: commas doubled for QEMU, then escaped for XML.
    std::string netdev = "user,id=" + std::string(user_netdev_id);
    if (p.net == qemu::network::restricted)
        netdev += ",restrict=on";
    for (const auto& f : p.ports)
        netdev += ",hostfwd=tcp:" + qemu::escape_option_value(f.host_address) + ":" +
                  std::to_string(f.host_port) + "-:" + std::to_string(f.guest_port);
    d.line(1, "<qemu:commandline>");
    auto arg = [&d](std::string_view value, std::string_view what) {
        d.line(2, "<qemu:arg value='" + xml_escape(value, what) + "'/>");
    };
    arg("-netdev", "argument");
    arg(netdev, "port forward");
    arg("-device", "argument");
    // In JSON: QEMU 7.2 creates JSON devices after the key=value ones, so
    // this one takes a free PCI slot after libvirt's explicitly placed ones
    // (as key=value it took slot 1 first and libvirt's root port failed).
    arg(R"({"driver":"virtio-net-pci","netdev":")" + std::string(user_netdev_id) + "\"}",
        "argument");
    if (!p.pidfile.empty()) {
        arg("-pidfile", "argument");
        arg(p.pidfile.native(), "pidfile");
    }
    d.line(1, "</qemu:commandline>");
    d.line(0, "</domain>");
    return d.take();
}

} // namespace localvm::libvirt::detail
