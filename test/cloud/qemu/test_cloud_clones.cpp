// The Debian cloud guest booted once for this whole program, saved once
// cloud-init is done, and each test case on a fresh clone of it
// (localvm/testing/shared_snapshot.hpp): the cloud suite grows by a restore
// per test, not a boot. Here: a clone does not run cloud-init again (issue
// 15); the guest agent's exec, copy both ways and guest-set-time after a
// pause (issue 16); the clock of a clone of a clone set by its start; shell
// and sync over SSH. The tests of the cold boot itself (cloud-init's first
// run with networks, UEFI, agent-only readiness) stay cold boots elsewhere.
#define BOOST_TEST_MODULE cloud_clones
#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/snapshot.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/testing/boost.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lt = localvm::testing;
namespace qemu = localvm::qemu;
using localvm::errc;
using namespace std::chrono_literals;

namespace {

// How every clone starts: as the source did (a restore checks cpus,
// memory and boot).
localvm::start_options cloud_start() {
    auto g = lt::guest_image::load("cloud");
    localvm::start_options s;
    s.cpus = 2;
    s.memory = "1G";
    s.boot = localvm::direct_boot{g["KERNEL"], g["INITRD"], g["CMDLINE"]};
    s.ports = {{"127.0.0.1", 0, 22}};
    s.user_data = "#cloud-config\n"
                  "runcmd:\n"
                  "  - [sh, -c, 'echo ran >> /var/tmp/runcmd-count']\n";
    return s;
}

// What tells a run of cloud-init: the boot, its status, how often its
// stages and the user-data's runcmd ran. (sudo's stderr goes: it warns that
// it cannot resolve the guest's host name.)
const std::string facts = "cat /proc/sys/kernel/random/boot_id; cloud-init status; "
                          "sudo grep -c \"running 'init-local'\" /var/log/cloud-init.log "
                          "2>/dev/null; cat /var/tmp/runcmd-count";

// The facts as the source VM said them right before the save.
std::string& facts_at_save() {
    static std::string said;
    return said;
}

struct cloud_guest {
    static lt::snapshot_source source() {
        lt::snapshot_source src;
        src.vm.name = "cloud";
        src.vm.base_image = lt::guest_image::load("cloud")["DISK"];
        src.vm.start = cloud_start();
        src.vm.options.extra_qmp = 1; // the tests' own monitor, for stop/cont
        src.vm.ready_timeout = 900s;  // a cold boot under TCG on a loaded host
        src.prepare = [](lt::vm& v) -> asio::awaitable<void> {
            auto done = co_await v.output("cloud-init status --wait");
            BOOST_TEST(done.find("status: done") != std::string::npos, done);
            facts_at_save() = co_await v.output(facts);
        };
        return src;
    }
};
using cloud = lt::suite_snapshot<cloud_guest>;

// The deadline of each test; the first also waits for the shared boot,
// which has its own (snapshot_source::boot_deadline).
constexpr auto deadline = std::chrono::minutes(10);

qemu::exec_options no_opts() { return qemu::exec_options(); }

// The host's sha256sum of a file.
asio::awaitable<std::string> host_digest(fs::path p) {
    localvm::process::options o;
    o.argv = {"sha256sum", p.string()};
    auto r = co_await localvm::process::run_checked(o);
    co_return r.out.substr(0, 64);
}

// The guest clock minus the host's, in seconds (through the agent).
asio::awaitable<double> guest_clock_offset(qemu::manager& m) {
    std::vector<std::string> argv = {"date", "+%s.%N"};
    auto r = co_await m.exec(argv, no_opts());
    const auto host = std::chrono::duration<double>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    co_return std::stod(r.out) - host;
}

} // namespace

BOOST_AUTO_TEST_SUITE(cloud_clone, *boost::unit_test::fixture<cloud>())

// The clone's sshd is slow at first (TCG translates its code afresh after
// the restore): before the probe held a clone's connections (probe.hpp),
// it replaced each every 500 ms, never saw a banner within 600 s and kept
// sshd at MaxStartups. The clone answered SSH before the body runs.
BOOST_AUTO_TEST_CASE(clone_after_cloud_init_does_not_run_it_again) {
    cloud::get().run(
        [](lt::vm& clone) -> asio::awaitable<void> {
            BOOST_TEST(facts_at_save().find("status: done\n1\nran\n") != std::string::npos,
                       facts_at_save());
            // The same boot (no reboot), cloud-init done, its stages and the
            // runcmd not run again.
            auto after = co_await clone.output(facts);
            BOOST_TEST(after == facts_at_save());
        },
        deadline);
    BOOST_TEST_MESSAGE("shared boot (cold boot, cloud-init, save): "
                       << cloud::get().boot_time().count() << " ms");
}

BOOST_AUTO_TEST_CASE(exec_through_the_agent) {
    cloud::get().run(
        [](lt::vm& clone) -> asio::awaitable<void> {
            auto& m = clone.manager();
            co_await m.wait_ready(60s, qemu::ready_mode::agent);
            // The kit started this clone with start_and_wait_ready, a minute
            // or more after the save: its clock was set while SSH came up.
            const auto offset = co_await guest_clock_offset(m);
            BOOST_TEST_MESSAGE("clone's clock after start_and_wait_ready: " << offset << " s");
            BOOST_TEST(std::abs(offset) < 2.0, offset);
            // Separate stdout and stderr, the exit status.
            std::vector<std::string> argv = {"sh", "-c",
                                             "echo to out; echo to err >&2; exit 7"};
            auto r = co_await m.exec(argv, no_opts());
            BOOST_TEST(r.exit_status == 7);
            BOOST_TEST(r.out == "to out\n");
            BOOST_TEST(r.err == "to err\n");

            // A timeout kills the guest program.
            qemu::exec_options quick;
            quick.timeout = 2s;
            argv = {"sleep", "4711"};
            try {
                co_await m.exec(argv, quick);
                BOOST_FAIL("no timeout");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
                BOOST_TEST(std::string(e.what()).find("killed it") != std::string::npos,
                           e.what());
            }
            argv = {"pgrep", "-f", "sleep 4711"};
            r = co_await m.exec(argv, no_opts());
            BOOST_TEST(r.exit_status == 1, r.out);
        },
        deadline);
}

BOOST_AUTO_TEST_CASE(copy_in_and_out_through_the_agent) {
    cloud::get().run(
        [](lt::vm& clone) -> asio::awaitable<void> {
            auto& m = clone.manager();
            const auto dir = cloud::get().set().root();
            // 10 MiB in and out: the same digest on both sides, modes kept.
            std::mt19937 gen(99);
            std::string data(10 * 1024 * 1024, '\0');
            for (auto& c : data)
                c = static_cast<char>(gen());
            const auto src = dir / "payload.bin";
            std::ofstream(src, std::ios::binary) << data;
            fs::permissions(src, fs::perms(0640));
            const auto digest = co_await host_digest(src);
            std::string guest_path = "/root/payload.bin";
            co_await m.copy_in(src, guest_path, qemu::copy_options());
            std::vector<std::string> argv = {
                "sh", "-c", "sha256sum /root/payload.bin; stat -c %a /root/payload.bin"};
            auto r = co_await m.exec(argv, no_opts());
            BOOST_TEST(r.out == digest + "  /root/payload.bin\n640\n", r.out + r.err);
            argv = {"chmod", "0604", guest_path};
            co_await m.exec(argv, no_opts());
            const auto back = dir / "back.bin";
            co_await m.copy_out(guest_path, back, qemu::copy_options());
            const auto back_digest = co_await host_digest(back);
            BOOST_TEST(back_digest == digest);
            BOOST_TEST(((fs::status(back).permissions() & fs::perms::mask) == fs::perms(0604)));

            // A guest path that does not exist.
            try {
                std::string missing = "/root/no-such-file";
                co_await m.copy_out(missing, dir / "never", qemu::copy_options());
                BOOST_FAIL("no error");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::not_found);
                BOOST_TEST(std::string(e.what()).find("/root/no-such-file does not exist") !=
                               std::string::npos,
                           e.what());
            }
            BOOST_TEST(!fs::exists(dir / "never"));
            fs::remove(src);
            fs::remove(back);
        },
        deadline);
}

// A pause leaves the guest clock behind; guest-set-time puts it right.
BOOST_AUTO_TEST_CASE(set_time_through_the_agent_after_a_pause) {
    cloud::get().run(
        [](lt::vm& clone) -> asio::awaitable<void> {
            auto& m = clone.manager();
            auto ex = co_await asio::this_coro::executor;
            {
                auto q = co_await localvm::qmp::client::connect(
                    m.files().extra_qmp_sockets.at(0).string());
                std::string stop = "stop", cont = "cont";
                co_await q.execute(stop);
                asio::steady_timer pause(ex, 6s); // the pause itself is what is tested
                co_await pause.async_wait(asio::use_awaitable);
                co_await q.execute(cont);
            }
            const auto behind = co_await guest_clock_offset(m);
            BOOST_TEST_MESSAGE("guest clock after a 6 s pause: " << behind << " s");
            BOOST_WARN(behind < -3);
            {
                auto agent = co_await m.agent();
                co_await agent.set_time(std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch()));
            }
            const auto after = co_await guest_clock_offset(m);
            BOOST_TEST_MESSAGE("guest clock after guest-set-time: " << after << " s");
            BOOST_TEST(std::abs(after) < 2.0, after);
        },
        deadline);
}

// Saved and restored later, a clone's clock would read the time of the
// save; its start sets it through the agent. Here a clone of the clone,
// restored 5 s after its save.
BOOST_AUTO_TEST_CASE(a_restored_clock_is_set_by_start) {
    cloud::get().run(
        [](lt::vm& clone) -> asio::awaitable<void> {
            auto& m = clone.manager();
            auto ex = co_await asio::this_coro::executor;
            qemu::snapshot_options so;
            so.then = qemu::after_save::stop;
            auto snap = co_await m.snapshot("again", so);
            BOOST_TEST_MESSAGE("save of a clone: " << snap.save_ms << " ms");
            {
                asio::steady_timer gap(ex, 5s); // the lag to make up
                co_await gap.async_wait(asio::use_awaitable);
            }
            auto o = m.config();
            o.name = "again-clone";
            qemu::manager c(ex, o);
            std::vector<std::string> clock;
            c.set_stage_sink([&](qemu::boot_stage st, std::string_view detail) {
                if (st == qemu::boot_stage::guest_clock)
                    clock.emplace_back(detail);
            });
            co_await c.create_from_snapshot("again");
            const auto t0 = std::chrono::steady_clock::now();
            co_await c.start(cloud_start());
            BOOST_TEST_MESSAGE("clone of the clone started in "
                               << std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - t0)
                                      .count()
                               << " ms");
            // The clock is set by the time it is used (start or the first
            // guest call after it; see manager::start).
            const auto restored = co_await guest_clock_offset(c);
            BOOST_TEST_MESSAGE("its clock after start: " << restored << " s");
            BOOST_TEST(std::abs(restored) < 2.0, restored);
            BOOST_REQUIRE(clock.size() == 1u);
            BOOST_TEST(clock[0] == "set to the host's time through the guest agent");
            c.set_stage_sink(nullptr);
            co_await c.stop();
            co_await c.remove();
            // The snapshot of the clone goes before the suite's own, which
            // its disk layer is backed by (the suite's teardown would also
            // do it in this order).
            qemu::delete_snapshot(o, "again");
        },
        deadline);
}

// Shell and sync over SSH to a clone.
BOOST_AUTO_TEST_CASE(shell_and_sync_over_ssh) {
    cloud::get().run(
        [](lt::vm& clone) -> asio::awaitable<void> {
            co_await clone.expect_output("id -un; sudo -n id -u", "debian\n0\n");
            const auto src = cloud::get().set().root() / "payload";
            fs::create_directories(src / "sub dir");
            std::ofstream(src / "sub dir" / "file one") << "payload\n";
            localvm::sync_options sy;
            sy.chown = "debian:debian";
            co_await clone.copy_in(src.string() + "/", "/srv/payload", sy);
            co_await clone.expect_output("stat -c %U '/srv/payload/sub dir/file one' && cat "
                                         "'/srv/payload/sub dir/file one'",
                                         "debian\npayload\n");
            fs::remove_all(src);
        },
        deadline);
}

BOOST_AUTO_TEST_SUITE_END()
