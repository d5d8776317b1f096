// The guest agent in the real Debian cloud guest (Debian's qemu-guest-agent,
// started by udev when the agent's virtio-serial port appears): exec, copy
// both ways, guest-set-time after a pause, the clock of a clone set through
// the agent by its start, agent-only readiness with sshd masked, and stop
// through the agent when the guest ignores ACPI. Two boots.
#define BOOST_TEST_MODULE cloud_agent
#include "../../e2e/qemu/guest.hpp"

#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/snapshot.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <random>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using localvm::qemu::end_reason;
using localvm::qemu::ready_mode;
using namespace std::chrono_literals;

namespace {

localvm::start_options cloud_start(const localvm::testing::guest_image& g,
                                   const lve2e::home& h, std::string user_data) {
    localvm::start_options s;
    s.cpus = 2;
    s.memory = "1G";
    s.boot = localvm::direct_boot{g["KERNEL"], g["INITRD"], g["CMDLINE"]};
    s.ssh_authorized_key = h.public_key;
    s.user_data = std::move(user_data);
    return s;
}

localvm::qemu::exec_options no_opts() { return localvm::qemu::exec_options(); }

// The host's sha256sum of a file.
asio::awaitable<std::string> host_digest(fs::path p) {
    localvm::process::options o;
    o.argv = {"sha256sum", p.string()};
    auto r = co_await localvm::process::run_checked(o);
    co_return r.out.substr(0, 64);
}

// The guest clock minus the host's, in seconds (through the agent).
asio::awaitable<double> guest_clock_offset(localvm::qemu::manager& m) {
    std::vector<std::string> argv = {"date", "+%s.%N"};
    auto r = co_await m.exec(argv, no_opts());
    const auto host = std::chrono::duration<double>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    co_return std::stod(r.out) - host;
}

// Saves `m` (which stops), waits, restores clone `c` of it: its start must
// have set the guest clock through the agent, which read the save's time.
asio::awaitable<void> restore_with_clock_set(localvm::qemu::manager& m, localvm::qemu::manager& c,
                                             const localvm::start_options& s,
                                             std::string snapshot) {
    localvm::qemu::snapshot_options so;
    so.then = localvm::qemu::after_save::stop;
    auto snap = co_await m.snapshot(snapshot, so);
    BOOST_TEST_MESSAGE("save: " << snap.save_ms << " ms");
    {
        asio::steady_timer gap(co_await asio::this_coro::executor, 5s); // the lag to make up
        co_await gap.async_wait(asio::use_awaitable);
    }
    std::vector<std::string> clock;
    c.set_stage_sink([&](localvm::qemu::boot_stage st, std::string_view detail) {
        if (st == localvm::qemu::boot_stage::guest_clock)
            clock.emplace_back(detail);
    });
    co_await c.create_from_snapshot(snapshot);
    const auto t0 = std::chrono::steady_clock::now();
    co_await c.start(s);
    BOOST_TEST_MESSAGE("clone started (clock set) in "
                       << std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - t0)
                              .count()
                       << " ms");
    BOOST_REQUIRE(clock.size() == 1u);
    BOOST_TEST(clock[0] == "set to the host's time through the guest agent");
    const auto restored = co_await guest_clock_offset(c);
    BOOST_TEST_MESSAGE("clone's clock after start: " << restored << " s");
    BOOST_TEST(std::abs(restored) < 2.0, restored);
    c.set_stage_sink(nullptr);
}

} // namespace

BOOST_AUTO_TEST_CASE(exec_copy_and_set_time_through_the_agent) {
    auto g = lve2e::load_guest("cloud");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto o = h.options("cloud-agent");
            o.extra_qmp = 1; // the test's own monitor, for stop/cont
            o.stop.powerdown_timeout = 120s;
            localvm::qemu::manager m(ex, o);
            co_await m.create(g["DISK"]);
            auto s = cloud_start(g, h, "#cloud-config\n");
            s.ports = {{"127.0.0.1", 0, 22}};
            co_await m.start(s);
            co_await m.wait_ready(600s, ready_mode::both);

            // Separate stdout and stderr, the exit status.
            std::vector<std::string> argv = {"sh", "-c", "echo to out; echo to err >&2; exit 7"};
            auto r = co_await m.exec(argv, no_opts());
            BOOST_TEST(r.exit_status == 7);
            BOOST_TEST(r.out == "to out\n");
            BOOST_TEST(r.err == "to err\n");

            // A timeout kills the guest program.
            localvm::qemu::exec_options quick;
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

            // 10 MiB in and out: the same digest on both sides, modes kept.
            std::mt19937 gen(99);
            std::string data(10 * 1024 * 1024, '\0');
            for (auto& c : data)
                c = static_cast<char>(gen());
            const auto src = h.root / "payload.bin";
            std::ofstream(src, std::ios::binary) << data;
            fs::permissions(src, fs::perms(0640));
            const auto digest = co_await host_digest(src);
            std::string guest_path = "/root/payload.bin";
            co_await m.copy_in(src, guest_path, localvm::qemu::copy_options());
            argv = {"sh", "-c", "sha256sum /root/payload.bin; stat -c %a /root/payload.bin"};
            r = co_await m.exec(argv, no_opts());
            BOOST_TEST(r.out == digest + "  /root/payload.bin\n640\n", r.out + r.err);
            argv = {"chmod", "0604", guest_path};
            co_await m.exec(argv, no_opts());
            const auto back = h.root / "back.bin";
            co_await m.copy_out(guest_path, back, localvm::qemu::copy_options());
            const auto back_digest = co_await host_digest(back);
            BOOST_TEST(back_digest == digest);
            BOOST_TEST(((fs::status(back).permissions() & fs::perms::mask) == fs::perms(0604)));

            // A guest path that does not exist.
            try {
                std::string missing = "/root/no-such-file";
                co_await m.copy_out(missing, h.root / "never", localvm::qemu::copy_options());
                BOOST_FAIL("no error");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::not_found);
                BOOST_TEST(std::string(e.what()).find("/root/no-such-file does not exist") !=
                               std::string::npos,
                           e.what());
            }
            BOOST_TEST(!fs::exists(h.root / "never"));

            // A pause leaves the guest clock behind; guest-set-time puts it right.
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

            // Saved and restored later: the clone's clock would read the
            // time of the save; its start sets it through the agent.
            localvm::qemu::manager c(ex, h.options("cloud-agent-clone"));
            co_await restore_with_clock_set(m, c, s, "agent-snap");
            co_await c.stop();
            co_await c.remove();
            localvm::qemu::delete_snapshot(h.options("x"), "agent-snap");
            co_await m.remove();
        },
        1500s);
}

BOOST_AUTO_TEST_CASE(agent_only_guest_ready_and_stopped_through_the_agent) {
    auto g = lve2e::load_guest("cloud");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto o = h.options("cloud-agent-only");
            o.stop.powerdown_timeout = 5s;
            o.stop.powerdown_repeat = 0ms;
            o.stop.agent_timeout = 180s;
            localvm::qemu::manager m(ex, o);
            std::vector<std::string> log;
            m.set_output([&](std::string_view l) { log.emplace_back(l); });
            co_await m.create(g["DISK"]);
            // No forward at all; sshd masked; the power button ignored.
            // bootcmd runs inside cloud-init.service, which Debian orders
            // Before=sysinit.target: logind (like qemu-guest-agent, like
            // every unit with default dependencies) has not started yet, so
            // it reads the drop-in when it does. A `systemctl restart` of
            // such a unit here would wait for sysinit.target, which waits
            // for cloud-init: the boot hangs and the agent never starts
            // (the first run of this test, 600 s without a guest-ping).
            // Stopping ssh.service is safe: a stop job waits for nothing.
            auto s = cloud_start(g, h,
                                 "#cloud-config\n"
                                 "bootcmd:\n"
                                 "  - [systemctl, mask, --now, ssh.service]\n"
                                 "  - [mkdir, -p, /etc/systemd/logind.conf.d]\n"
                                 "  - [sh, -c, 'printf \"[Login]\\nHandlePowerKey=ignore\\n\" > "
                                 "/etc/systemd/logind.conf.d/ignore-power.conf']\n");
            co_await m.start(s);
            co_await m.wait_ready(600s, ready_mode::agent);
            // cloud-init done: bootcmd ran.
            std::vector<std::string> argv = {"cloud-init", "status", "--wait"};
            auto r = co_await m.exec(argv, no_opts());
            BOOST_TEST(r.out.find("status: done") != std::string::npos, r.out + r.err);
            argv = {"systemctl", "is-active", "ssh.service"};
            r = co_await m.exec(argv, no_opts());
            BOOST_TEST(r.exit_status != 0);
            BOOST_TEST(r.out == "inactive\n", r.out);
            // wait_ready by ssh has nothing to reach.
            try {
                co_await m.wait_ready(5000ms);
                BOOST_FAIL("ssh ready without a forward");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::invalid_argument);
            }

            // The clock of a clone of this guest (no SSH) set by its start;
            // the stop below is the clone's (the save stopped the original).
            auto oc = h.options("cloud-agent-only-clone");
            oc.stop = o.stop;
            localvm::qemu::manager c(ex, oc);
            c.set_output([&](std::string_view l) { log.emplace_back(l); });
            co_await restore_with_clock_set(m, c, s, "agent-only-snap");

            log.clear();
            co_await c.stop();
            auto st = co_await c.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->last_end == end_reason::stopped));
            BOOST_TEST((st.state->stopped_by == localvm::qemu::stop_step::agent),
                       to_string(st.state->stopped_by));
            std::string said;
            for (auto& l : log)
                said += l + "\n";
            BOOST_TEST(said.find("asking the guest agent (guest-shutdown)") != std::string::npos,
                       said);
            BOOST_TEST(said.find("stopped by the guest agent") != std::string::npos, said);
            co_await c.remove();
            localvm::qemu::delete_snapshot(h.options("x"), "agent-only-snap");
            co_await m.remove();
        },
        1500s);
}
