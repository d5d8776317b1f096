// The localvm command on the cloud-efi guest, on one boot: `up` without
// --kernel (UEFI firmware boots the disk's boot loader) with user-data, a
// command run by up, shell, stop through the ACPI power button, delete. TCG
// and restricted networking; temporary XDG directories.
#define BOOST_TEST_MODULE cli_cloud_efi
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "../../e2e/qemu/guest.hpp"
#include "../../integration/cli/run_cli.hpp"

namespace json = boost::json;
using lvcli::run;

namespace {

// Whatever the test did, no QEMU outlives it.
struct stop_at_exit {
    std::vector<std::string> env;
    ~stop_at_exit() {
        try {
            run({"stop", "efi", "-q"}, env);
        } catch (...) {
        }
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(up_without_kernel_boots_through_firmware) {
    auto g = lve2e::load_guest("cloud-efi");
    lvcli::scratch s;
    auto env = s.env();
    stop_at_exit guard{env};
    auto user_data = s.root / "user-data";
    std::ofstream(user_data) << "#cloud-config\n"
                                "runcmd:\n"
                                "  - [sh, -c, 'echo localvm-cli-efi > /run/marker']\n";

    auto up = run({"up",    "efi",        "--base",      g["DISK"],          "--cpus",
                   "2",     "--memory",   "1G",          "--accel",          "tcg",
                   "--net", "restricted", "--user-data", user_data.string(), "--timeout",
                   "900",   "--",         "cloud-init",  "status",           "--wait"},
                  env);
    BOOST_TEST_MESSAGE("up stderr:\n" << up.err);
    BOOST_REQUIRE_MESSAGE(up.status == 0, "up failed: " << up.err);
    BOOST_TEST(up.out.find("status: done") != std::string::npos, up.out);

    auto sh = run({"shell", "efi", "--",
                   "cat /run/marker && test -d /sys/firmware/efi && echo efi && id -un"},
                  env);
    BOOST_TEST(sh.status == 0, sh.err);
    BOOST_TEST(sh.out == "localvm-cli-efi\nefi\ndebian\n");

    auto stop = run({"stop", "efi"}, env);
    BOOST_TEST(stop.status == 0, stop.err);
    auto st = run({"status", "efi", "--json"}, env);
    BOOST_REQUIRE_MESSAGE(st.status == 0, st.err);
    auto v = json::parse(st.out).as_object();
    BOOST_TEST(v.at("state").as_string() == "stopped");
    BOOST_TEST(v.at("last_end").as_string() == "stopped");
    BOOST_TEST(v.at("stopped_by") == json::value("powerdown"), st.out);

    auto del = run({"delete", "efi"}, env);
    BOOST_TEST(del.status == 0, del.err);
}
