// The guest agent in the real Debian cloud guest (Debian's qemu-guest-agent,
// started by udev when the agent's virtio-serial port appears) as the only
// way in: agent-only readiness with sshd masked from the first boot, the
// clock of a clone set through the agent by its start, and stop through the
// agent when the guest ignores ACPI. One boot. (exec, copies and
// guest-set-time run on clones of one shared boot: test_cloud_clones.cpp.)
#define BOOST_TEST_MODULE cloud_agent
#include "../../e2e/qemu/guest.hpp"

#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/snapshot.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>


namespace asio = boost::asio;
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
