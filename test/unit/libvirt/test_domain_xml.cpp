// The domain XML of a launch plan, byte for byte, and hostile text in it.
#define BOOST_TEST_MODULE libvirt_domain_xml
#include <localvm/error.hpp>

#include <boost/test/unit_test.hpp>

#include <cctype>
#include <functional>
#include <string>

#include "libvirt/domain_xml.hpp"
#include "libvirt/volume_xml.hpp"

namespace lv = localvm::libvirt::detail;
namespace q = localvm::qemu;
using localvm::errc;

namespace {

q::launch_plan tiny_plan() {
    q::launch_plan p;
    p.name = "tiny";
    p.accel = q::accelerator::tcg;
    p.qemu_binary = "qemu-system-x86_64";
    p.cpus = 1;
    p.memory_mib = 512;
    p.disk = "/pool/tiny.qcow2";
    p.seed = "/pool/tiny-seed.iso";
    p.boot = localvm::direct_boot{"/g/vmlinuz", "/g/initrd.img", "console=ttyS0 rootwait"};
    p.net = q::network::restricted;
    p.ports = {{"127.0.0.1", 0, 22}, {"127.0.0.1", 8080, 80}};
    p.console_log = "/run/vm/console.log";
    p.pidfile = "/run/vm/qemu.pid";
    p.qmp_socket = "/ignored/qmp.sock";
    p.console_socket = "/ignored/console.sock";
    return p;
}

errc code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const localvm::error& e) {
        return static_cast<errc>(e.code().value());
    }
    return errc{};
}

std::string message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const localvm::error& e) {
        return e.what();
    }
    return {};
}

} // namespace

BOOST_AUTO_TEST_CASE(direct_boot_tcg_byte_for_byte) {
    const std::string expected =
        R"(<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>tiny</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>/g/vmlinuz</kernel>
    <initrd>/g/initrd.img</initrd>
    <cmdline>console=ttyS0 rootwait</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <cpu mode='maximum'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/pool/tiny.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/pool/tiny-seed.iso'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='pty'>
      <log file='/run/vm/console.log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
    <panic model='isa'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=localvm-net0,restrict=on,hostfwd=tcp:127.0.0.1:0-:22,hostfwd=tcp:127.0.0.1:8080-:80'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='{&quot;driver&quot;:&quot;virtio-net-pci&quot;,&quot;netdev&quot;:&quot;localvm-net0&quot;}'/>
    <qemu:arg value='-pidfile'/>
    <qemu:arg value='/run/vm/qemu.pid'/>
  </qemu:commandline>
</domain>
)";
    BOOST_TEST(lv::domain_xml(tiny_plan()) == expected);
}

BOOST_AUTO_TEST_CASE(uefi_kvm_byte_for_byte) {
    auto p = tiny_plan();
    p.boot.reset();
    p.uefi = q::firmware{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/pool/tiny-vars.fd"};
    p.accel = q::accelerator::kvm;
    p.qemu_binary = "/usr/bin/qemu-system-x86_64";
    p.machine = "pc-q35-7.2";
    p.net = q::network::user;
    p.ports = {};
    p.seed.clear();
    p.console_log.clear();
    p.pidfile.clear();
    const std::string expected =
        R"(<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>tiny</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram>/pool/tiny-vars.fd</nvram>
  </os>
  <features>
    <acpi/>
  </features>
  <cpu mode='host-passthrough'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/pool/tiny.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='pty'>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
    <panic model='isa'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=localvm-net0'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='{&quot;driver&quot;:&quot;virtio-net-pci&quot;,&quot;netdev&quot;:&quot;localvm-net0&quot;}'/>
  </qemu:commandline>
</domain>
)";
    BOOST_TEST(lv::domain_xml(p) == expected);
}

BOOST_AUTO_TEST_CASE(arm64_uses_virt_and_no_isa_panic) {
    auto p = tiny_plan();
    p.architecture = q::arch::arm64;
    auto xml = lv::domain_xml(p);
    BOOST_TEST(xml.find("<type arch='aarch64' machine='virt'>hvm</type>") != std::string::npos);
    BOOST_TEST(xml.find("<gic version='max'/>") != std::string::npos);
    BOOST_TEST(xml.find("panic") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(hostile_text_is_escaped) {
    auto p = tiny_plan();
    p.name = "a<b>&'\"c";
    p.disk = "/p/<&'\">.qcow2";
    p.seed = "/p/x'y.iso";
    p.boot->kernel = "/k/&amp;";
    p.boot->initrd.clear();
    p.boot->cmdline = "root=/dev/vda x='<y>' \"z\"\tq\nr\rs";
    p.pidfile = "/run/a,b'.pid"; // -pidfile is no option list: the comma stays single
    p.console_log = "/run/l'og";
    p.qemu_binary = "/opt/q&e<mu>";
    auto xml = lv::domain_xml(p);
    BOOST_TEST(xml.find("<name>a&lt;b&gt;&amp;&apos;&quot;c</name>") != std::string::npos, xml);
    BOOST_TEST(xml.find("<source file='/p/&lt;&amp;&apos;&quot;&gt;.qcow2'/>") !=
               std::string::npos);
    BOOST_TEST(xml.find("<source file='/p/x&apos;y.iso'/>") != std::string::npos);
    BOOST_TEST(xml.find("<kernel>/k/&amp;amp;</kernel>") != std::string::npos);
    BOOST_TEST(xml.find("<initrd>") == std::string::npos);
    BOOST_TEST(xml.find("<cmdline>root=/dev/vda x=&apos;&lt;y&gt;&apos; "
                        "&quot;z&quot;&#9;q&#10;r&#13;s</cmdline>") != std::string::npos);
    BOOST_TEST(xml.find("<qemu:arg value='/run/a,b&apos;.pid'/>") != std::string::npos);
    BOOST_TEST(xml.find("<log file='/run/l&apos;og' append='on'/>") != std::string::npos);
    BOOST_TEST(xml.find("<emulator>/opt/q&amp;e&lt;mu&gt;</emulator>") != std::string::npos);
    // Nothing hostile is left raw: every '<' opens one of our own elements.
    for (std::size_t i = xml.find('<'); i != std::string::npos; i = xml.find('<', i + 1))
        BOOST_TEST((std::isalpha(static_cast<unsigned char>(xml[i + 1])) || xml[i + 1] == '/'));
}

BOOST_AUTO_TEST_CASE(text_xml_cannot_carry_is_refused_by_name) {
    auto p = tiny_plan();
    p.disk = std::string("/p/a\x01", 5);
    BOOST_TEST((code_of([&] { lv::domain_xml(p); }) == errc::invalid_argument));
    BOOST_TEST(message_of([&] { lv::domain_xml(p); }).find("disk: control character 1 at byte 4") !=
               std::string::npos);
    p = tiny_plan();
    p.boot->cmdline = "a \xff b";
    BOOST_TEST(message_of([&] {
                   lv::domain_xml(p);
               }).find("kernel command line: not UTF-8 at byte 2") != std::string::npos);
    p = tiny_plan();
    p.name = std::string("x\0y", 3);
    BOOST_TEST((code_of([&] { lv::domain_xml(p); }) == errc::invalid_argument));
    // UTF-8 passes through as is.
    p = tiny_plan();
    p.seed = "/p/s\xc3\xa9\xe2\x82\xac.iso";
    BOOST_TEST(lv::domain_xml(p).find("/p/s\xc3\xa9\xe2\x82\xac.iso") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(what_libvirt_cannot_do_here_is_unsupported) {
    auto p = tiny_plan();
    p.nics = {q::virtual_nic{"vnic0", "/sw", "52:54:00:00:00:01"}};
    BOOST_TEST((code_of([&] { lv::domain_xml(p); }) == errc::unsupported));
    p = tiny_plan();
    p.incoming = true;
    BOOST_TEST((code_of([&] { lv::domain_xml(p); }) == errc::unsupported));
}

BOOST_AUTO_TEST_CASE(commas_in_forward_addresses_would_be_doubled) {
    // Addresses are IPv4 literals after planning; the escape is a second line.
    auto p = tiny_plan();
    p.ports = {{"1,2", 1, 2}};
    BOOST_TEST(lv::domain_xml(p).find("hostfwd=tcp:1,,2:1-:2'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(volume_xml_byte_for_byte) {
    BOOST_TEST(lv::overlay_volume_xml("vm.qcow2", "/b/base'&.img", "raw", 1u << 30) ==
               "<volume>\n  <name>vm.qcow2</name>\n"
               "  <capacity unit='bytes'>1073741824</capacity>\n"
               "  <target>\n    <format type='qcow2'/>\n  </target>\n"
               "  <backingStore>\n    <path>/b/base&apos;&amp;.img</path>\n"
               "    <format type='raw'/>\n  </backingStore>\n</volume>\n");
    BOOST_TEST(
        lv::overlay_volume_xml("a<b", "/b", "qcow2").find("<name>a&lt;b</name>\n  <target>") !=
        std::string::npos);
    BOOST_TEST(lv::raw_volume_xml("vm-seed.iso", 374784) ==
               "<volume>\n  <name>vm-seed.iso</name>\n"
               "  <capacity unit='bytes'>374784</capacity>\n"
               "  <allocation unit='bytes'>374784</allocation>\n"
               "  <target>\n    <format type='raw'/>\n  </target>\n</volume>\n");
}

// A volume's XML as libvirt 9.0's dir pool describes it (a qcow2 overlay
// with its backing store; layout of `virsh vol-dumpxml`).
const char* const overlay_as_described =
    "<volume type='file'>\n"
    "  <name>vm.qcow2</name>\n"
    "  <key>/pool/vm.qcow2</key>\n"
    "  <capacity unit='bytes'>67108864</capacity>\n"
    "  <allocation unit='bytes'>200704</allocation>\n"
    "  <physical unit='bytes'>196624</physical>\n"
    "  <target>\n"
    "    <path>/pool/vm.qcow2</path>\n"
    "    <format type='qcow2'/>\n"
    "    <permissions>\n"
    "      <mode>0600</mode>\n"
    "      <owner>0</owner>\n"
    "      <group>0</group>\n"
    "    </permissions>\n"
    "    <compat>1.1</compat>\n"
    "    <clusterSize unit='B'>65536</clusterSize>\n"
    "    <features/>\n"
    "  </target>\n"
    "  <backingStore>\n"
    "    <path>/base/a&amp;b&apos;s.img</path>\n"
    "    <format type='raw'/>\n"
    "  </backingStore>\n"
    "</volume>\n";

BOOST_AUTO_TEST_CASE(a_volumes_format_capacity_and_backing_are_read) {
    std::string problem;
    auto f = lv::parse_volume_xml(overlay_as_described, problem);
    BOOST_REQUIRE(f.has_value());
    BOOST_TEST(f->format == "qcow2"); // the volume's own, not its backing store's
    BOOST_TEST(f->capacity_bytes == 67108864u);
    BOOST_REQUIRE(f->backing.has_value());
    BOOST_TEST(*f->backing == "/base/a&b's.img");
    // No backing store; double quotes; a <targets>-like longer name is skipped.
    f = lv::parse_volume_xml("<volume><targets/><capacity unit=\"bytes\">5</capacity>"
                             "<target><format type=\"raw\"/></target></volume>",
                             problem);
    BOOST_REQUIRE(f.has_value());
    BOOST_TEST(f->format == "raw");
    BOOST_TEST(f->capacity_bytes == 5u);
    BOOST_TEST(!f->backing.has_value());
}

BOOST_AUTO_TEST_CASE(a_volume_xml_without_format_or_capacity_is_a_problem) {
    std::string problem;
    BOOST_TEST(!lv::parse_volume_xml("<volume><capacity unit='bytes'>1</capacity>"
                                     "<target><path>/x</path></target></volume>",
                                     problem));
    BOOST_TEST(problem.find("no format") != std::string::npos, problem);
    // The backing store's format is not the volume's.
    BOOST_TEST(!lv::parse_volume_xml("<volume><capacity unit='bytes'>1</capacity><backingStore>"
                                     "<target><format type='raw'/></target></backingStore>"
                                     "</volume>",
                                     problem));
    BOOST_TEST(problem.find("no format") != std::string::npos, problem);
    for (const char* capacity : {"<capacity unit='KiB'>1</capacity>", "<capacity unit='bytes'>"
                                                                       "</capacity>",
                                 "<capacity unit='bytes'>-1</capacity>",
                                 "<capacity unit='bytes'>99999999999999999999</capacity>", ""}) {
        problem.clear();
        BOOST_TEST(!lv::parse_volume_xml(std::string("<volume>") + capacity +
                                             "<target><format type='qcow2'/></target></volume>",
                                         problem),
                   capacity);
        BOOST_TEST(problem.find("capacity") != std::string::npos, problem);
    }
    // Cut short anywhere: never a read past the end.
    const std::string whole = overlay_as_described;
    for (std::size_t n = 0; n < whole.size(); ++n)
        (void)lv::parse_volume_xml(std::string_view(whole).substr(0, n), problem);
}
