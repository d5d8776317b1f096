#define BOOST_TEST_MODULE qemu_arguments
#include <localvm/error.hpp>
#include <localvm/qemu/arguments.hpp>
#include <localvm/qemu/options.hpp>

#include <boost/test/unit_test.hpp>

#include <algorithm>

using namespace localvm::qemu;
using localvm::errc;

namespace {

launch_plan base_plan() {
    launch_plan p;
    p.name = "vm1";
    p.qemu_binary = "qemu-system-x86_64";
    p.cpus = 2;
    p.memory_mib = 1024;
    p.disk = "/data/vm1/disk.qcow2";
    p.seed = "/data/vm1/seed.iso";
    p.qmp_socket = "/run/vm1/qmp.sock";
    p.console_socket = "/run/vm1/console.sock";
    p.console_log = "/run/vm1/console.log";
    p.agent_socket = "/run/vm1/qga.sock";
    p.pidfile = "/run/vm1/qemu.pid";
    return p;
}

std::string joined(const std::vector<std::string>& argv) {
    std::string s;
    for (auto& a : argv)
        s += (s.empty() ? "" : " ") + a;
    return s;
}

// The value following `flag`, for each occurrence.
std::vector<std::string> values(const std::vector<std::string>& argv, const std::string& flag) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i + 1 < argv.size(); ++i)
        if (argv[i] == flag)
            out.push_back(argv[i + 1]);
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(amd64_direct_boot_tcg_restricted) {
    auto p = base_plan();
    p.net = network::restricted;
    p.ports = {{"127.0.0.1", 0, 22}, {"127.0.0.1", 8080, 80}};
    p.boot = localvm::direct_boot{"/k/vmlinux", "/k/initrd.img", "console=ttyS0 rootwait"};
    auto argv = command_line(p);
    BOOST_TEST(joined(argv) ==
               "qemu-system-x86_64 -name guest=vm1 -machine q35 -accel tcg -cpu max -smp 2 -m "
               "1024M -nodefaults -no-user-config -display none -S -chardev "
               "socket,id=qmp,path=/run/vm1/qmp.sock,server=on,wait=off -mon "
               "chardev=qmp,mode=control -chardev "
               "socket,id=serial0,path=/run/vm1/console.sock,server=on,wait=off,logfile=/run/vm1/"
               "console.log,logappend=on -serial chardev:serial0 -chardev "
               "socket,id=qga0,path=/run/vm1/qga.sock,server=on,wait=off -device "
               "virtio-serial-pci -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0,id=qga-port "
               "-drive file=/data/vm1/disk.qcow2,if=virtio,format=qcow2,discard=unmap -drive "
               "file=/data/vm1/seed.iso,if=virtio,format=raw,readonly=on -nic "
               "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:0-:22,hostfwd=tcp:127."
               "0.0.1:8080-:80 -device virtio-rng-pci -device pvpanic -action panic=exit-failure -kernel /k/vmlinux -initrd /k/initrd.img "
               "-append console=ttyS0 rootwait -pidfile /run/vm1/qemu.pid");
}

BOOST_AUTO_TEST_CASE(kvm_uses_host_cpu_and_user_nat_has_no_restrict) {
    auto p = base_plan();
    p.accel = accelerator::kvm;
    auto argv = command_line(p);
    BOOST_TEST(values(argv, "-accel") == std::vector<std::string>{"kvm"});
    BOOST_TEST(values(argv, "-cpu") == std::vector<std::string>{"host"});
    BOOST_TEST(values(argv, "-nic") == std::vector<std::string>{"user,model=virtio-net-pci"});
    BOOST_TEST(values(argv, "-kernel").empty());
}

BOOST_AUTO_TEST_CASE(arm64_firmware_boot) {
    auto p = base_plan();
    p.architecture = arch::arm64;
    p.qemu_binary = "qemu-system-aarch64";
    p.uefi = firmware{"/usr/share/AAVMF/AAVMF_CODE.fd", "/data/vm1/efi-vars.fd"};
    auto argv = command_line(p);
    BOOST_TEST(argv.front() == "qemu-system-aarch64");
    BOOST_TEST(values(argv, "-machine") == std::vector<std::string>{"virt,gic-version=max"});
    BOOST_TEST(values(argv, "-drive") ==
               (std::vector<std::string>{
                   "file=/data/vm1/disk.qcow2,if=virtio,format=qcow2,discard=unmap",
                   "file=/data/vm1/seed.iso,if=virtio,format=raw,readonly=on",
                   "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd",
                   "if=pflash,format=raw,unit=1,file=/data/vm1/efi-vars.fd"}));
}

BOOST_AUTO_TEST_CASE(paths_with_spaces_and_commas) {
    auto p = base_plan();
    p.disk = "/data/my vms,1/disk.qcow2";
    p.qmp_socket = "/run/a,b/qmp.sock";
    p.console_socket = "/run/a,b/console.sock";
    p.console_log = "/run/a,b/console.log";
    p.agent_socket = "/run/a,b/qga.sock";
    p.boot = localvm::direct_boot{"/k k/vm,linux", "", "quiet"};
    p.seed.clear();
    p.monitor = monitor_mode::socket;
    p.monitor_socket = "/run/a,b/monitor.sock";
    p.paused = false;
    auto argv = command_line(p);
    BOOST_TEST(values(argv, "-drive") ==
               std::vector<std::string>{
                   "file=/data/my vms,,1/disk.qcow2,if=virtio,format=qcow2,discard=unmap"});
    BOOST_TEST(values(argv, "-chardev")[0] ==
               "socket,id=qmp,path=/run/a,,b/qmp.sock,server=on,wait=off");
    BOOST_TEST(values(argv, "-chardev")[1] ==
               "socket,id=serial0,path=/run/a,,b/console.sock,server=on,wait=off,logfile=/run/"
               "a,,b/console.log,logappend=on");
    // -kernel and -append are not option lists: no escaping.
    BOOST_TEST(values(argv, "-kernel") == std::vector<std::string>{"/k k/vm,linux"});
    BOOST_TEST(values(argv, "-initrd").empty());
    BOOST_TEST(values(argv, "-chardev")[2] ==
               "socket,id=qga0,path=/run/a,,b/qga.sock,server=on,wait=off");
    BOOST_TEST(values(argv, "-chardev")[3] ==
               "socket,id=hmp,path=/run/a,,b/monitor.sock,server=on,wait=off");
    BOOST_TEST(values(argv, "-monitor").empty());
    BOOST_TEST(std::count(argv.begin(), argv.end(), "-S") == 0);
}

// The human monitor, byte for byte: on QEMU's stdio (a foreground QEMU), or
// on a unix socket (the detached QEMU that qemu::manager runs).
BOOST_AUTO_TEST_CASE(human_monitor_on_stdio_or_socket) {
    const std::string common =
        "qemu-system-x86_64 -name guest=vm1 -machine q35 -accel tcg -cpu max -smp 2 -m 1024M "
        "-nodefaults -no-user-config -display none -S -chardev "
        "socket,id=qmp,path=/run/vm1/qmp.sock,server=on,wait=off -mon chardev=qmp,mode=control "
        "-chardev socket,id=serial0,path=/run/vm1/console.sock,server=on,wait=off,logfile=/run/"
        "vm1/console.log,logappend=on -serial chardev:serial0 -chardev "
        "socket,id=qga0,path=/run/vm1/qga.sock,server=on,wait=off -device virtio-serial-pci "
        "-device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0,id=qga-port -drive "
        "file=/data/vm1/disk.qcow2,if=virtio,format=qcow2,discard=unmap -drive "
        "file=/data/vm1/seed.iso,if=virtio,format=raw,readonly=on -nic "
        "user,model=virtio-net-pci -device virtio-rng-pci -device pvpanic -action "
        "panic=exit-failure -pidfile /run/vm1/qemu.pid";
    auto p = base_plan();
    BOOST_TEST(joined(command_line(p)) == common);

    p.monitor = monitor_mode::stdio;
    BOOST_TEST(joined(command_line(p)) == common + " -monitor stdio");

    p.monitor = monitor_mode::socket;
    p.monitor_socket = "/run/vm1/monitor.sock";
    BOOST_TEST(joined(command_line(p)) ==
               common + " -chardev socket,id=hmp,path=/run/vm1/monitor.sock,server=on,wait=off "
                        "-mon chardev=hmp,mode=readline");
    // The argv words themselves, not just their joined text.
    auto argv = command_line(p);
    BOOST_TEST(std::vector<std::string>(argv.end() - 4, argv.end()) ==
               (std::vector<std::string>{"-chardev",
                                         "socket,id=hmp,path=/run/vm1/monitor.sock,server=on,"
                                         "wait=off",
                                         "-mon", "chardev=hmp,mode=readline"}));
}

BOOST_AUTO_TEST_CASE(extra_qmp_monitors_follow_the_librarys_own) {
    auto p = base_plan();
    p.extra_qmp_sockets = {"/run/vm1/qmp-1.sock", "/run/a,b/qmp-2.sock"};
    auto argv = command_line(p);
    auto at = std::find(argv.begin(), argv.end(), "chardev=qmp,mode=control");
    BOOST_REQUIRE(at != argv.end());
    BOOST_TEST(std::vector<std::string>(at + 1, at + 9) ==
               (std::vector<std::string>{
                   "-chardev", "socket,id=qmp1,path=/run/vm1/qmp-1.sock,server=on,wait=off", "-mon",
                   "chardev=qmp1,mode=control", "-chardev",
                   "socket,id=qmp2,path=/run/a,,b/qmp-2.sock,server=on,wait=off", "-mon",
                   "chardev=qmp2,mode=control"}));
    BOOST_TEST(at[9] == "-chardev");
    BOOST_TEST(at[10].starts_with("socket,id=serial0,"));
}

BOOST_AUTO_TEST_CASE(escape_doubles_commas) {
    BOOST_TEST(escape_option_value("") == "");
    BOOST_TEST(escape_option_value("a,b,,c") == "a,,b,,,,c");
}

BOOST_AUTO_TEST_CASE(kernel_cmdline_normalisation) {
    BOOST_TEST(normalize_kernel_cmdline("BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro $vt_handoff quiet",
                                        arch::amd64) ==
               "root=/dev/vda1 ro quiet rootwait console=ttyS0");
    BOOST_TEST(normalize_kernel_cmdline("console=ttyS0,115200n8 rootwait quiet quiet",
                                        arch::amd64) == "console=ttyS0,115200n8 rootwait quiet");
    BOOST_TEST(normalize_kernel_cmdline("", arch::arm64) == "rootwait console=ttyAMA0");
    BOOST_TEST(normalize_kernel_cmdline("console=tty0", arch::amd64) ==
               "console=tty0 rootwait console=ttyS0");
    BOOST_TEST(normalize_kernel_cmdline("  a   init=\"/bin/my init\"  a ", arch::amd64) ==
               "a init=\"/bin/my init\" rootwait console=ttyS0");
}

BOOST_AUTO_TEST_CASE(memory_sizes) {
    boost::system::error_code ec;
    BOOST_TEST(parse_memory_mib("4G", ec).value() == 4096u);
    BOOST_TEST(!ec);
    BOOST_TEST(parse_memory_mib("512", ec).value() == 512u);
    BOOST_TEST(parse_memory_mib("512M", ec).value() == 512u);
    BOOST_TEST(parse_memory_mib("512m", ec).value() == 512u);
    BOOST_TEST(parse_memory_mib("2GiB", ec).value() == 2048u);
    BOOST_TEST(parse_memory_mib("2gb", ec).value() == 2048u);
    BOOST_TEST(parse_memory_mib("1T", ec).value() == 1024u * 1024u);
    BOOST_TEST(parse_memory_mib("65536K", ec).value() == 64u);
    for (const char* bad : {"", "G", "4X", "-1G", "4 G", "1.5G", "1000K", "8M", "0", "99999999T",
                            "4GG", "18446744073709551617"}) {
        BOOST_TEST(!parse_memory_mib(bad, ec).has_value(), bad);
        BOOST_TEST((ec == errc::invalid_argument), bad);
    }
}

BOOST_AUTO_TEST_CASE(disk_sizes) {
    boost::system::error_code ec;
    BOOST_TEST(parse_disk_size("20G", ec).value() == 20ull << 30);
    BOOST_TEST(!ec);
    BOOST_TEST(parse_disk_size("512M", ec).value() == 512ull << 20);
    BOOST_TEST(parse_disk_size("512m", ec).value() == 512ull << 20);
    BOOST_TEST(parse_disk_size("2GiB", ec).value() == 2ull << 30);
    BOOST_TEST(parse_disk_size("1tb", ec).value() == 1ull << 40);
    BOOST_TEST(parse_disk_size("7E", ec).value() == 7ull << 60);
    BOOST_TEST(parse_disk_size("1048576", ec).value() == 1048576u);
    BOOST_TEST(parse_disk_size("9223372036854775807", ec).value() == 9223372036854775807ull);
    for (const char* bad :
         {"", "G", "0", "0G", "-1G", "+1G", " 1G", "1G ", "1.5G", "20X", "4GG", "1Gb2", "8E",
          "9223372036854775808", "-o", "--help", "1G,o=x", "18446744073709551617"}) {
        BOOST_TEST(!parse_disk_size(bad, ec).has_value(), bad);
        BOOST_TEST((ec == errc::invalid_argument), bad);
    }
}

BOOST_AUTO_TEST_CASE(usernet_ports) {
    std::string text = "Hub -1 (#net088):\r\n"
                       "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port "
                       "RecvQ SendQ\r\n"
                       "  TCP[HOST_FORWARD]  12       127.0.0.1 34145       10.0.2.15    22     0 "
                       "    0\r\n"
                       "  TCP[HOST_FORWARD]  11       127.0.0.1 45191       10.0.2.15    80     0 "
                       "    0\r\n";
    std::vector<localvm::port_forward> want{{"127.0.0.1", 0, 80}, {"127.0.0.1", 0, 22}};
    auto ports = parse_usernet_ports(text, want);
    BOOST_REQUIRE(ports);
    BOOST_TEST(*ports == (std::vector<std::uint16_t>{45191, 34145}));
    BOOST_TEST(!parse_usernet_ports(text, {{"127.0.0.1", 0, 443}}));
    BOOST_TEST(!parse_usernet_ports(text, {{"127.0.0.1", 1234, 22}}));
    BOOST_TEST(!parse_usernet_ports(text, {{"127.0.0.1", 0, 22}, {"127.0.0.1", 0, 22}}));
}

BOOST_AUTO_TEST_CASE(names_and_layout) {
    BOOST_TEST(check_name("vm-1.test_A").empty());
    for (const char* bad : {"", ".", "..", "a/b", "../x", "a b", "a\nb"})
        BOOST_TEST(!check_name(bad).empty(), bad);
    BOOST_TEST(!check_name(std::string(65, 'a')).empty());
    options o;
    o.name = "vm1";
    o.data_dir = "/var/lib/x";
    o.runtime_dir = "/run/x";
    auto l = make_layout(o);
    BOOST_TEST(l.disk == "/var/lib/x/vm1/disk.qcow2");
    BOOST_TEST(l.qmp_socket == "/run/x/vm1/qmp.sock");
    BOOST_TEST(l.monitor_socket == "/run/x/vm1/monitor.sock");
    BOOST_TEST(l.agent_socket == "/run/x/vm1/qga.sock");
    BOOST_TEST(l.extra_qmp_sockets.empty());
    o.extra_qmp = 2;
    BOOST_TEST(
        make_layout(o).extra_qmp_sockets ==
        (std::vector<std::filesystem::path>{"/run/x/vm1/qmp-1.sock", "/run/x/vm1/qmp-2.sock"}));
    o.extra_qmp = 9;
    BOOST_CHECK_EXCEPTION(make_layout(o), localvm::error, [](const localvm::error& e) {
        return e.code() == errc::invalid_argument &&
               std::string(e.what()).find("extra_qmp") != std::string::npos;
    });
    o.extra_qmp = 0;
    o.name = "../etc";
    BOOST_CHECK_EXCEPTION(make_layout(o), localvm::error, [](const localvm::error& e) {
        return e.code() == errc::invalid_argument;
    });
    o.name = "vm1";
    o.runtime_dir = "/" + std::string(120, 'r');
    BOOST_CHECK_EXCEPTION(make_layout(o), localvm::error, [](const localvm::error& e) {
        return e.code() == errc::invalid_argument &&
               std::string(e.what()).find("shorter runtime directory") != std::string::npos;
    });
}

BOOST_AUTO_TEST_CASE(guest_agent_channel_only_with_a_socket) {
    auto p = base_plan();
    auto argv = command_line(p);
    BOOST_TEST(values(argv, "-device") ==
               (std::vector<std::string>{"virtio-serial-pci",
                                         "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0,id=qga-port",
                                         "virtio-rng-pci", "pvpanic"}));
    p.agent_socket.clear();
    argv = command_line(p);
    BOOST_TEST(values(argv, "-device") == (std::vector<std::string>{"virtio-rng-pci", "pvpanic"}));
    for (auto& c : values(argv, "-chardev"))
        BOOST_TEST(c.find("qga0") == std::string::npos);
}

// A restore: the versioned machine type a snapshot pinned, and -incoming
// defer right after -S, before the monitors.
BOOST_AUTO_TEST_CASE(restore_pins_the_machine_and_defers_incoming) {
    auto p = base_plan();
    p.machine = "pc-q35-7.2";
    p.incoming = true;
    auto argv = command_line(p);
    BOOST_TEST(values(argv, "-machine") == std::vector<std::string>{"pc-q35-7.2"});
    auto s = std::find(argv.begin(), argv.end(), "-S");
    BOOST_REQUIRE(s != argv.end());
    BOOST_REQUIRE(argv.end() - s >= 4);
    BOOST_TEST(*(s + 1) == "-incoming");
    BOOST_TEST(*(s + 2) == "defer");
    BOOST_TEST(*(s + 3) == "-chardev");
    p.architecture = arch::arm64;
    p.machine = "virt-7.2";
    p.incoming = false;
    argv = command_line(p);
    BOOST_TEST(values(argv, "-machine") == std::vector<std::string>{"virt-7.2,gic-version=max"});
    BOOST_TEST(values(argv, "-incoming").empty());
}

// Virtual NICs follow the user-mode NIC (which then gets QEMU's MAC
// explicitly, for the seed's network-config to match), a vde netdev each;
// a switch directory with a comma has it doubled.
BOOST_AUTO_TEST_CASE(virtual_nics_on_vde_switches) {
    auto p = base_plan();
    p.net = network::restricted;
    p.ports = {{"127.0.0.1", 0, 22}};
    p.nics = {{"vnic0", "/run/@networks/lan/switch", "0e:01:02:03:04:05"},
              {"vnic1", "/run/@networks/a,b/switch", "0a:00:00:00:00:01"}};
    auto argv = command_line(p);
    auto nic = std::find(argv.begin(), argv.end(), "-nic");
    BOOST_REQUIRE(nic != argv.end());
    BOOST_TEST(joined({nic, nic + 12}) ==
               "-nic user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:0-:22,mac=52:54:"
               "00:12:34:56 -netdev vde,id=vnic0-net,sock=/run/@networks/lan/switch -device "
               "virtio-net-pci,netdev=vnic0-net,id=vnic0,mac=0e:01:02:03:04:05 -netdev "
               "vde,id=vnic1-net,sock=/run/@networks/a,,b/switch -device "
               "virtio-net-pci,netdev=vnic1-net,id=vnic1,mac=0a:00:00:00:00:01 -device "
               "virtio-rng-pci");
}
