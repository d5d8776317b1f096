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

BOOST_AUTO_TEST_CASE(up_without_kernel_boots_through_firmware) {
    auto g = lve2e::load_guest("cloud-efi");
    lvcli::scratch s;
    auto env = s.env();
    lvcli::stop_at_exit guard{"efi", env};
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

    // The power button's window as in the library's cloud tests: TCG on a
    // shared machine. --timeout is stop's own option (default 60 s);
    // -v says which step ended QEMU.
    auto stop = run({"stop", "efi", "-v", "--timeout", "180"}, env);
    BOOST_TEST(stop.status == 0, stop.err);
    BOOST_TEST(stop.err.find("stopped by the ACPI power button") != std::string::npos, stop.err);
    auto st = run({"status", "efi", "--json"}, env);
    BOOST_REQUIRE_MESSAGE(st.status == 0, st.err);
    auto v = json::parse(st.out).as_object();
    BOOST_TEST(v.at("state").as_string() == "stopped");
    BOOST_TEST(v.at("last_end").as_string() == "stopped");
    // When it was not the power button: what the guest did with it, from
    // the end of its console.
    const bool by_button = v.at("stopped_by") == json::value("powerdown");
    std::string console_end;
    if (!by_button) {
        auto log = lvcli::slurp(std::string(v.at("paths").at("console_log").as_string()));
        console_end = log.substr(log.size() > 8000 ? log.size() - 8000 : 0);
    }
    BOOST_TEST(by_button, st.out << "\nconsole log (end):\n" << console_end);

    auto del = run({"delete", "efi"}, env);
    BOOST_TEST(del.status == 0, del.err);
}
