// The firmware boot path end to end: the cloud-efi guest (a GPT disk with an
// EFI system partition and GRUB on the removable-media path, like Debian's
// genericcloud images) started with the library's defaults, no direct boot:
// OVMF from the ovmf package with the VM's own variable store finds the
// boot loader on the disk. One boot shared by the checks below (a suite
// fixture); the last one stops the VM through ACPI.
#define BOOST_TEST_MODULE cloud_efi_guest
#include <localvm/qemu/manager.hpp>
#include <localvm/testing/boost.hpp>

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "../../e2e/qemu/guest.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lt = localvm::testing;
using namespace std::chrono_literals;

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

struct efi_vm {
    static void setup(lt::vm_set& s) {
        auto g = lve2e::load_guest("cloud-efi");
        lt::vm_spec v;
        v.name = "efi";
        v.base_image = g["DISK"];
        v.start.cpus = 2;
        v.start.memory = "1G";
        // No `boot`: firmware boot, what `start` does by default.
        v.start.user_data = "#cloud-config\n"
                            "runcmd:\n"
                            "  - [sh, -c, 'echo localvm-efi-marker > /run/marker']\n";
        v.options.stop.powerdown_timeout = 180s; // a loaded machine, TCG
        v.ready_timeout = 900s;
        s.add(std::move(v));
    }
};
using efi_vms = lt::suite_vms<efi_vm>;

// The deadline of each check; the first also boots the VM.
constexpr auto deadline = std::chrono::minutes(20);

} // namespace

BOOST_AUTO_TEST_SUITE(firmware_boot, *boost::unit_test::fixture<efi_vms>())

BOOST_AUTO_TEST_CASE(boots_through_uefi_firmware) {
    efi_vms::get().run(
        [](lt::vm_set& s) -> asio::awaitable<void> {
            auto& vm = s["efi"];
            // The guest runs on UEFI firmware, its kernel booted by the boot
            // loader with the root partition by PARTUUID.
            co_await vm.expect_status("test -d /sys/firmware/efi");
            auto cmdline = co_await vm.output("cat /proc/cmdline");
            BOOST_TEST(cmdline.find("BOOT_IMAGE=/boot/vmlinuz-") == 0u, cmdline);
            BOOST_TEST(cmdline.find(" root=PARTUUID=") != std::string::npos, cmdline);
            BOOST_TEST(cmdline.find(" console=ttyS0") != std::string::npos, cmdline);
            co_await vm.expect_output("findmnt -n -o SOURCE /", "/dev/vda1\n");
            // OVMF booted the disk's removable-media path and said so on the
            // serial console, which the VM's console log keeps.
            auto& m = vm.manager();
            auto console = slurp(m.files().console_log);
            BOOST_TEST(console.find("BdsDxe: starting Boot") != std::string::npos);
            BOOST_TEST(console.find("Welcome to GRUB!") != std::string::npos);
            // The VM has its own variable store, a copy of the ovmf package's
            // template (the firmware's first choice on Debian 12).
            BOOST_TEST(fs::is_regular_file(fs::symlink_status(m.files().efi_vars)));
            BOOST_TEST(fs::file_size(m.files().efi_vars) ==
                       fs::file_size("/usr/share/OVMF/OVMF_VARS_4M.fd"));
        },
        deadline, "firmware boot");
}

BOOST_AUTO_TEST_CASE(user_data_applied) {
    efi_vms::get().run(
        [](lt::vm_set& s) -> asio::awaitable<void> {
            auto& vm = s["efi"];
            auto status = co_await vm.output("cloud-init status --wait", 10min);
            BOOST_TEST(status.find("status: done") != std::string::npos, status);
            co_await vm.expect_output("cat /run/marker", "localvm-efi-marker\n");
        },
        deadline, "user-data");
}

BOOST_AUTO_TEST_CASE(shell_and_sudo) {
    efi_vms::get().run(
        [](lt::vm_set& s) -> asio::awaitable<void> {
            auto& vm = s["efi"];
            co_await vm.expect_output("id -un; sudo -n id -u", "debian\n0\n");
            auto r = co_await vm.expect_status("echo out; echo err >&2; exit 7", 7);
            BOOST_TEST(r.output == "out\nerr\n", r.output);
        },
        deadline, "shell");
}

BOOST_AUTO_TEST_CASE(sync_as_root) {
    auto& set = efi_vms::get();
    auto src = set.root() / "payload";
    fs::create_directories(src / "sub dir");
    std::ofstream(src / "sub dir" / "file one") << "payload\n";
    set.run(
        [&](lt::vm_set& s) -> asio::awaitable<void> {
            auto& vm = s["efi"];
            localvm::sync_options o;
            o.chown = "debian:debian";
            co_await vm.copy_in(src.string() + "/", "/srv/payload", o);
            co_await vm.expect_output(
                "stat -c %U '/srv/payload/sub dir/file one'; cat '/srv/payload/sub dir/file one'",
                "debian\npayload\n");
        },
        deadline, "sync");
}

// Last: the guest powers off on the ACPI power button.
BOOST_AUTO_TEST_CASE(stop_through_acpi) {
    efi_vms::get().run(
        [](lt::vm_set& s) -> asio::awaitable<void> {
            auto& m = s["efi"].manager();
            co_await m.stop();
            auto st = co_await m.query();
            BOOST_TEST(!st.running);
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->last_end == localvm::qemu::end_reason::stopped));
            BOOST_TEST((st.state->stopped_by == localvm::qemu::stop_step::powerdown),
                       "stopped by " << localvm::qemu::to_string(st.state->stopped_by));
            BOOST_TEST(st.state->last_end_detail == "exited 0");
        },
        deadline, "stop");
}

BOOST_AUTO_TEST_SUITE_END()
