// The localvm command through libvirt (--connect URI, and LOCALVM_CONNECT)
// on the tiny guest and a private libvirtd: create, up with a command,
// status, shell, stop, delete; the flag wins over the variable; what only
// the QEMU backend has is refused by name. Exit 77 when libvirtd, QEMU,
// unshare or setpriv is absent (or not root).
#define BOOST_TEST_MODULE e2e_libvirt_cli
#include <boost/test/unit_test.hpp>

#include <iostream>

#include "../../integration/cli/run_cli.hpp"
#include "../qemu/guest.hpp"
#include "daemon_fixture.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using lvcli::run;
using namespace std::chrono_literals;

namespace {

libvirt_test::private_libvirtd* libvirtd = nullptr;

struct global_setup {
    global_setup() { libvirtd = &libvirt_test::daemon_fixture::start(false).daemon; }
};
BOOST_TEST_GLOBAL_FIXTURE(global_setup);

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_CASE(lifecycle_through_a_libvirt_uri) {
    auto g = lve2e::load_guest("tiny");
    lvcli::scratch s;
    auto env = s.env();
    auto base = lvcli::make_base_image(s);
    const std::vector<std::string> at = {"--connect", libvirtd->uri(), "--pool", "localvm-test"};
    // The options after the command and the VM's name (before any `--`).
    auto with = [&](std::vector<std::string> args) {
        args.insert(args.begin() + 2, at.begin(), at.end());
        return args;
    };

    auto created = run(with({"create", "lvcli", "--base", base.string()}), env);
    BOOST_REQUIRE_MESSAGE(created.status == 0, created.err);
    BOOST_TEST(has(created.err, "created lvcli (volume lvcli.qcow2 in pool localvm-test"),
               created.err);
    BOOST_TEST(fs::exists(libvirtd->pool_dir() / "lvcli.qcow2"));

    auto up = run(with({"up",         "lvcli",     "--kernel",   g["KERNEL"], "--initrd",
                        g["INITRD"],  "--cmdline", g["CMDLINE"], "--cpus",    "1",
                        "--memory",   "512M",      "--accel",    "tcg",       "--net",
                        "restricted", "-v",        "--",         "uname",     "-n"}),
                  env);
    BOOST_TEST_MESSAGE("up stderr:\n" << up.err);
    BOOST_REQUIRE_MESSAGE(up.status == 0, "up failed: " << up.err);
    BOOST_TEST(up.out == "lvcli\n");
    // The console came through the daemon's console stream.
    BOOST_TEST(has(up.err, "console: localvm-tiny: "), up.err);
    BOOST_TEST(has(up.err, "boot timeline of lvcli:"), up.err);

    auto st = run(with({"status", "lvcli"}), env);
    BOOST_TEST(st.status == 0, st.err);
    BOOST_TEST(has(st.out, "state:    running"), st.out);
    BOOST_TEST(has(st.out, "libvirt (" + libvirtd->uri() + ")"), st.out);
    BOOST_TEST(has(st.out, "-> 22"), st.out);

    // LOCALVM_CONNECT instead of the flag.
    auto env_connect = env;
    env_connect.push_back("LOCALVM_CONNECT=" + libvirtd->uri());
    auto sh =
        run({"shell", "lvcli", "--pool", "localvm-test", "--", "echo", "via-env;", "exit", "3"},
            env_connect);
    BOOST_TEST(sh.status == 3, sh.err);
    BOOST_TEST(sh.out == "via-env\n");
    // The flag wins over the variable: a URI with no daemon behind it.
    auto nowhere = env;
    nowhere.push_back("LOCALVM_CONNECT=qemu+unix:///system?socket=" +
                      (s.root / "no.sock").string());
    sh = run(with({"shell", "lvcli", "--", "true"}), nowhere);
    BOOST_TEST(sh.status == 0, sh.err);
    sh = run({"shell", "lvcli", "--pool", "localvm-test", "--", "true"}, nowhere);
    BOOST_TEST(sh.status == 1);
    BOOST_TEST(has(sh.err, "no.sock"), sh.err);
    auto bad = env;
    bad.push_back("LOCALVM_CONNECT=nonsense");
    sh = run({"shell", "lvcli", "--", "true"}, bad);
    BOOST_TEST(sh.status == 1);
    BOOST_TEST(has(sh.err, "LOCALVM_CONNECT"), sh.err);

    // What only the QEMU backend has is refused by name.
    auto fwd = run(with({"forward", "lvcli"}), env);
    BOOST_TEST(fwd.status == 1);
    BOOST_TEST(has(fwd.err, "forward is not available with --connect"), fwd.err);

    auto stop = run(with({"stop", "lvcli"}), env);
    BOOST_TEST(stop.status == 0, stop.err);
    BOOST_TEST(has(stop.err, "stopped lvcli"), stop.err);
    st = run(with({"status", "lvcli"}), env);
    BOOST_TEST(has(st.out, "state:    stopped"), st.out);

    auto del = run(with({"delete", "lvcli"}), env);
    BOOST_TEST(del.status == 0, del.err);
    BOOST_TEST(!fs::exists(libvirtd->pool_dir() / "lvcli.qcow2"));
    BOOST_TEST(!fs::exists(libvirtd->pool_dir() / "lvcli-seed.iso"));
    del = run(with({"delete", "lvcli"}), env);
    BOOST_TEST(del.status == 1);
    BOOST_TEST(has(del.err, "does not exist"), del.err);
}
