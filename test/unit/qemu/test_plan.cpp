#define BOOST_TEST_MODULE qemu_plan
#include "instance_id.hpp"
#include "plan.hpp"

#include <localvm/error.hpp>

#include "../../common/host_key.hpp"

#include <boost/test/unit_test.hpp>

#include <set>
#include <string>

using namespace localvm::qemu;
using namespace localvm::qemu::detail;
using localvm::errc;
using localvm::start_options;
namespace fs = std::filesystem;

namespace {

// The host as the planner sees it: which regular files exist.
struct fake_files {
    std::set<fs::path> present;
    file_probe probe() const {
        return [this](const fs::path& p) { return present.count(p) != 0; };
    }
};

const fake_files ovmf_4m{{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"}};

options vm_options() {
    options o;
    o.name = "vm1";
    o.data_dir = "/data";
    o.runtime_dir = "/run/lv";
    o.qemu_binary = "/usr/bin/qemu-system-x86_64";
    o.net = network::restricted;
    o.extra_qmp = 2;
    return o;
}

// The diagnostic of what `f` throws, checking its code.
template <class F> std::string rejected(F f, errc code) {
    try {
        f();
    } catch (const localvm::error& e) {
        BOOST_TEST((e.code() == code), e.what());
        return e.diagnostic();
    }
    BOOST_ERROR("accepted");
    return {};
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::string rejected_start(const start_options& so, errc code,
                           const fake_files& files = ovmf_4m) {
    auto o = vm_options();
    auto l = make_layout(o);
    return rejected([&] { plan_start(o, l, so, files.probe()); }, code);
}

using localvm::test::test_host_key;

} // namespace

BOOST_AUTO_TEST_CASE(cpus_must_be_1_to_255) {
    start_options so;
    so.cpus = 0;
    BOOST_TEST(rejected_start(so, errc::invalid_argument) == "cpus: 0 is outside 1..255");
    so.cpus = 256;
    BOOST_TEST(rejected_start(so, errc::invalid_argument) == "cpus: 256 is outside 1..255");
    auto o = vm_options();
    for (unsigned n : {1u, 255u}) {
        so.cpus = n;
        BOOST_TEST(plan_start(o, make_layout(o), so, ovmf_4m.probe()).launch.cpus == n);
    }
}

BOOST_AUTO_TEST_CASE(memory_is_a_qemu_size) {
    start_options so;
    so.memory = "lots";
    BOOST_TEST(rejected_start(so, errc::invalid_argument) ==
               "memory: \"lots\" is not a size like 512M or 4G (at least 16M, whole MiB)");
    so.memory = "8M";
    BOOST_TEST(contains(rejected_start(so, errc::invalid_argument), "\"8M\""));
    so.memory = "2G";
    auto o = vm_options();
    BOOST_TEST(plan_start(o, make_layout(o), so, ovmf_4m.probe()).launch.memory_mib == 2048u);
}

BOOST_AUTO_TEST_CASE(forwards_are_checked) {
    auto with = [](std::string address, std::uint16_t host, std::uint16_t guest) {
        localvm::port_forward f;
        f.host_address = std::move(address);
        f.host_port = host;
        f.guest_port = guest;
        return f;
    };
    start_options so;
    so.ports = {with("localhost", 0, 22)};
    BOOST_TEST(rejected_start(so, errc::invalid_argument) ==
               "port forward: host address \"localhost\" is not an IPv4 address");
    so.ports = {with("::1", 0, 22)};
    BOOST_TEST(contains(rejected_start(so, errc::invalid_argument), "\"::1\""));
    so.ports = {with("127.0.0.1", 0, 0)};
    BOOST_TEST(rejected_start(so, errc::invalid_argument) == "port forward: guest port 0");
    so.ports = {with("127.0.0.1", 2222, 22), with("127.0.0.1", 2222, 80)};
    BOOST_TEST(rejected_start(so, errc::invalid_argument) ==
               "port forward: host port 2222 is forwarded twice");

    // The same port on two addresses, and port 0 (QEMU picks) any number of times.
    so.ports = {with("127.0.0.1", 2222, 22), with("127.0.0.2", 2222, 22),
                with("127.0.0.1", 0, 80), with("127.0.0.1", 0, 443)};
    auto o = vm_options();
    auto plan = plan_start(o, make_layout(o), so, ovmf_4m.probe());
    BOOST_REQUIRE(plan.launch.ports.size() == 4u);
    BOOST_TEST(plan.launch.ports[1].host_address == "127.0.0.2");
    BOOST_TEST(plan.launch.ports[3].guest_port == 443);
}

BOOST_AUTO_TEST_CASE(kernel_boot_needs_its_files_and_normalises_the_command_line) {
    start_options so;
    so.boot.emplace();
    so.boot->kernel = "/boot/vmlinuz";
    so.boot->initrd = "/boot/initrd.img";
    so.boot->cmdline = "BOOT_IMAGE=/vmlinuz root=/dev/vda1 quiet";
    fake_files none;
    BOOST_TEST(rejected_start(so, errc::not_found, none) == "kernel /boot/vmlinuz does not exist");
    fake_files kernel_only{{"/boot/vmlinuz"}};
    BOOST_TEST(rejected_start(so, errc::not_found, kernel_only) ==
               "initrd /boot/initrd.img does not exist");

    // No firmware needed, none looked up.
    auto o = vm_options();
    fake_files both{{"/boot/vmlinuz", "/boot/initrd.img"}};
    auto plan = plan_start(o, make_layout(o), so, both.probe());
    BOOST_REQUIRE(plan.launch.boot.has_value());
    BOOST_TEST(plan.launch.boot->kernel == fs::path("/boot/vmlinuz"));
    BOOST_TEST(plan.launch.boot->initrd == fs::path("/boot/initrd.img"));
    BOOST_TEST(plan.launch.boot->cmdline ==
               normalize_kernel_cmdline(so.boot->cmdline, arch::amd64));
    BOOST_TEST(!contains(plan.launch.boot->cmdline, "BOOT_IMAGE"));
    BOOST_TEST(!plan.launch.uefi.has_value());
    BOOST_TEST(plan.vars_template.empty());

    // No initrd: none checked; relative paths become absolute.
    so.boot->initrd.clear();
    so.boot->kernel = "vmlinuz";
    fake_files relative{{"vmlinuz"}};
    plan = plan_start(o, make_layout(o), so, relative.probe());
    BOOST_TEST(plan.launch.boot->kernel == fs::absolute("vmlinuz"));
    BOOST_TEST(plan.launch.boot->initrd.empty());

    // The console device follows the architecture.
    o.architecture = arch::arm64;
    plan = plan_start(o, make_layout(o), so, relative.probe());
    BOOST_TEST(contains(plan.launch.boot->cmdline, "console=ttyAMA0"));
}

BOOST_AUTO_TEST_CASE(firmware_boot_takes_the_first_split_firmware_found) {
    auto o = vm_options();
    auto l = make_layout(o);
    start_options so;
    auto plan = plan_start(o, l, so, ovmf_4m.probe());
    BOOST_REQUIRE(plan.launch.uefi.has_value());
    BOOST_TEST(plan.launch.uefi->code == fs::path("/usr/share/OVMF/OVMF_CODE_4M.fd"));
    BOOST_TEST(plan.launch.uefi->vars == l.efi_vars);
    BOOST_TEST(plan.vars_template == fs::path("/usr/share/OVMF/OVMF_VARS_4M.fd"));
    BOOST_TEST(!plan.launch.boot.has_value());

    // The code image alone is not enough: the next candidate.
    fake_files older{{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd",
                      "/usr/share/OVMF/OVMF_VARS.fd"}};
    plan = plan_start(o, l, so, older.probe());
    BOOST_TEST(plan.launch.uefi->code == fs::path("/usr/share/OVMF/OVMF_CODE.fd"));
    BOOST_TEST(plan.vars_template == fs::path("/usr/share/OVMF/OVMF_VARS.fd"));

    BOOST_TEST(rejected_start(so, errc::unsupported, fake_files{}) ==
               "firmware boot needs UEFI firmware; install the ovmf package (or use direct boot)");
    o.architecture = arch::arm64;
    BOOST_TEST(contains(rejected([&] { plan_start(o, l, so, ovmf_4m.probe()); },
                                 errc::unsupported),
                        "install the qemu-efi-aarch64 package"));
    fake_files aavmf{{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"}};
    plan = plan_start(o, l, so, aavmf.probe());
    BOOST_TEST(plan.launch.uefi->code == fs::path("/usr/share/AAVMF/AAVMF_CODE.fd"));
    BOOST_TEST((plan.launch.architecture == arch::arm64));
}

BOOST_AUTO_TEST_CASE(the_plan_takes_every_path_from_the_layout) {
    auto o = vm_options();
    auto l = make_layout(o);
    start_options so;
    so.cpus = 3;
    so.monitor = true;
    auto p = plan_start(o, l, so, ovmf_4m.probe()).launch;
    BOOST_TEST(p.name == "vm1");
    BOOST_TEST(p.qemu_binary == fs::path("/usr/bin/qemu-system-x86_64"));
    BOOST_TEST((p.net == network::restricted));
    BOOST_TEST(p.cpus == 3u);
    BOOST_TEST(p.memory_mib == 4096u);
    BOOST_TEST(p.disk == fs::path("/data/vm1/disk.qcow2"));
    BOOST_TEST(p.seed == fs::path("/data/vm1/seed.iso"));
    BOOST_TEST(p.qmp_socket == fs::path("/run/lv/vm1/qmp.sock"));
    BOOST_REQUIRE(p.extra_qmp_sockets.size() == 2u);
    BOOST_TEST(p.extra_qmp_sockets[1] == fs::path("/run/lv/vm1/qmp-2.sock"));
    BOOST_TEST(p.console_socket == fs::path("/run/lv/vm1/console.sock"));
    BOOST_TEST(p.agent_socket == fs::path("/run/lv/vm1/qga.sock"));
    // QEMU writes the console into the supervisor's FIFO, not the log itself.
    BOOST_TEST(p.console_log == fs::path("/run/lv/vm1/console.log.fifo"));
    BOOST_TEST(p.pidfile == fs::path("/run/lv/vm1/qemu.pid"));
    BOOST_TEST((p.monitor == monitor_mode::socket));
    BOOST_TEST(p.monitor_socket == fs::path("/run/lv/vm1/monitor.sock"));
    BOOST_TEST(p.paused);
    BOOST_TEST(p.ports.empty());

    so.monitor = false;
    BOOST_TEST((plan_start(o, l, so, ovmf_4m.probe()).launch.monitor == monitor_mode::none));
}

BOOST_AUTO_TEST_CASE(the_seed_holds_user_data_id_name_and_key) {
    auto o = vm_options();
    auto l = make_layout(o);
    start_options so;
    so.user_data = "#cloud-config\nruncmd: [true]\n";
    so.ssh_authorized_key = "ssh-ed25519 AAAAkey me@host";
    auto seed = plan_start(o, l, so, ovmf_4m.probe()).seed;
    const auto id = instance_id("vm1", so.user_data, so.ssh_authorized_key);
    BOOST_TEST(seed.user_data == so.user_data);
    BOOST_TEST(seed.meta.instance_id == id);
    BOOST_TEST(seed.meta.local_hostname == "vm1");
    BOOST_TEST(!seed.vendor_data.has_value());
    BOOST_TEST(!seed.network_config.has_value());
    BOOST_TEST(localvm::cloudinit::render_meta_data(seed.meta) ==
               "instance-id: \"" + id +
                   "\"\n"
                   "local-hostname: \"vm1\"\n"
                   "public-keys:\n"
                   "  - \"ssh-ed25519 AAAAkey me@host\"\n");

    // No key, no public-keys.
    so.ssh_authorized_key.clear();
    seed = plan_start(o, l, so, ovmf_4m.probe()).seed;
    BOOST_TEST(seed.meta.public_keys.empty());
    BOOST_TEST(seed.meta.instance_id == instance_id("vm1", so.user_data, ""));

    // Meta-data that cannot be rendered is refused here, before any file.
    so.ssh_authorized_key = "ssh-ed25519 AAAA\nsecond line";
    BOOST_TEST(contains(rejected_start(so, errc::invalid_argument), "public-keys"));
}

BOOST_AUTO_TEST_CASE(a_pinned_host_key_goes_in_vendor_data_with_a_new_id) {
    auto o = vm_options();
    auto l = make_layout(o);
    start_options so;
    so.user_data = "#cloud-config\n";
    so.ssh_authorized_key = "ssh-ed25519 AAAAkey me@host";
    auto plan = plan_start(o, l, so, ovmf_4m.probe());
    const auto before = plan.seed.meta.instance_id;
    pin_host_key(plan, o, so, test_host_key);
    BOOST_REQUIRE(plan.seed.vendor_data.has_value());
    BOOST_TEST(*plan.seed.vendor_data ==
               localvm::cloudinit::render_host_key_vendor_data(test_host_key));
    BOOST_TEST(plan.seed.meta.instance_id ==
               instance_id("vm1", so.user_data,
                           so.ssh_authorized_key + '\n' + test_host_key.public_key));
    BOOST_TEST(plan.seed.meta.instance_id != before);

    auto bad = test_host_key;
    bad.private_key = "not a key";
    BOOST_TEST(!rejected([&] { pin_host_key(plan, o, so, bad); }, errc::invalid_argument).empty());
}
