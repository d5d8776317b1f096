// Snapshot and clone of the Debian cloud guest (issue 15): saved once
// cloud-init is done, a clone restores the running machine, so cloud-init
// is still done there and nothing of it runs again (same boot, the
// user-data's runcmd ran once). One boot.
#define BOOST_TEST_MODULE cloud_snapshot
#include "../../e2e/qemu/guest.hpp"

#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/snapshot.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

namespace asio = boost::asio;
namespace qemu = localvm::qemu;
using namespace std::chrono_literals;

namespace {

asio::awaitable<std::string> out(qemu::manager& m, std::string command) {
    auto r = co_await m.shell(std::move(command), {});
    BOOST_TEST(r.exit_status == 0, r.output);
    co_return r.output;
}

// What tells a run of cloud-init: the boot, its status, how often its
// stages and the user-data's runcmd ran. (sudo's stderr goes: it warns that
// it cannot resolve the guest's host name, in the output shell() returns.)
const std::string facts = "cat /proc/sys/kernel/random/boot_id; cloud-init status; "
                          "sudo grep -c \"running 'init-local'\" /var/log/cloud-init.log 2>/dev/null; "
                          "cat /var/tmp/runcmd-count";

} // namespace

// The clone's sshd is slow at first (TCG translates its code afresh after
// the restore): before the probe held a clone's connections (probe.hpp),
// it replaced each every 500 ms, never saw a banner within 600 s and kept
// sshd at MaxStartups.
BOOST_AUTO_TEST_CASE(clone_after_cloud_init_does_not_run_it_again) {
    auto g = lve2e::load_guest("cloud");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            qemu::manager src(ex, h.options("src"));
            co_await src.create(g["DISK"]);
            localvm::start_options s;
            s.cpus = 2;
            s.memory = "1G";
            s.boot = localvm::direct_boot{g["KERNEL"], g["INITRD"], g["CMDLINE"]};
            s.ports = {{"127.0.0.1", 0, 22}};
            s.ssh_authorized_key = h.public_key;
            s.user_data = "#cloud-config\n"
                          "runcmd:\n"
                          "  - [sh, -c, 'echo ran >> /var/tmp/runcmd-count']\n";
            const auto b0 = std::chrono::steady_clock::now();
            co_await src.start(s);
            co_await src.wait_ready(900s);
            co_await out(src, "true");
            BOOST_TEST_MESSAGE("cold boot start to first shell: "
                               << std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - b0)
                                      .count()
                               << " ms");
            auto done = co_await out(src, "cloud-init status --wait");
            BOOST_TEST(done.find("status: done") != std::string::npos, done);
            auto before = co_await out(src, facts);
            BOOST_TEST(before.find("status: done\n1\nran\n") != std::string::npos, before);

            auto info = co_await src.snapshot("booted", qemu::snapshot_options());
            BOOST_TEST_MESSAGE("save: guest paused " << info.save_ms << " ms, state "
                                                     << info.state_bytes << " bytes, disk layer "
                                                     << info.disk_bytes << " bytes");
            co_await src.stop();

            qemu::manager clone(ex, h.options("clone"));
            co_await clone.create_from_snapshot("booted");
            auto t0 = std::chrono::steady_clock::now();
            co_await clone.start(s);
            co_await clone.wait_ready(300s);
            auto after = co_await out(clone, facts);
            auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0);
            BOOST_TEST_MESSAGE("clone start to first shell: " << took.count() << " ms");
            // The same boot (no reboot), cloud-init done, its stages and the
            // runcmd not run again.
            BOOST_TEST(after == before);
            co_await clone.stop();
            co_await clone.remove();
            qemu::delete_snapshot(h.options("src"), "booted");
            co_await src.remove();
        },
        1800s);
}
