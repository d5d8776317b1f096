#define BOOST_TEST_MODULE qmp_qemu
// The QMP client against a real, paused QEMU (TCG, no guest, no NIC).
#include <localvm/error.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <csignal>

#include "qemu_process.hpp"

namespace asio = boost::asio;
namespace qmp = localvm::qmp;
using localvm::errc;
using namespace std::chrono_literals;

namespace {

void run(std::function<asio::awaitable<void>()> body) {
    localvm::testing::run_coroutine(std::move(body), 60s);
}

} // namespace

BOOST_AUTO_TEST_CASE(negotiate_version_stop_cont_and_errors) {
    run([]() -> asio::awaitable<void> {
        localvm::test::qemu_process qemu;
        co_await qemu.wait_for_socket(20s);
        auto c = co_await qmp::client::connect(qemu.socket(), {.enable_oob = true});
        BOOST_TEST(c.oob_enabled());
        BOOST_TEST(c.greeting().capabilities.size() >= 1u);

        auto v = co_await c.query_version();
        BOOST_TEST(v.major == c.greeting().qemu.major);
        BOOST_TEST(v.minor == c.greeting().qemu.minor);
        BOOST_TEST(v.package == c.greeting().qemu.package);
        BOOST_TEST(v.major >= 7);

        auto st = co_await c.query_status();
        BOOST_TEST(st.status == "prelaunch");
        BOOST_TEST(!st.running);

        auto resumed = c.subscribe("RESUME");
        auto stopped = c.subscribe("STOP");
        co_await c.cont();
        auto e = co_await resumed.next(10s);
        BOOST_TEST(e.name == "RESUME");
        BOOST_TEST(e.seconds > 0);
        BOOST_TEST((co_await c.query_status()).running);
        co_await c.stop();
        BOOST_TEST((co_await stopped.next(10s)).name == "STOP");
        st = co_await c.query_status();
        BOOST_TEST(st.status == "paused");
        BOOST_TEST(!st.running);

        try {
            co_await c.execute("no-such-command");
            BOOST_FAIL("no exception");
        } catch (const qmp::command_error& x) {
            BOOST_TEST(x.code() == errc::qmp_error);
            BOOST_TEST(x.error_class() == "CommandNotFound");
            BOOST_TEST(x.desc().find("no-such-command") != std::string::npos);
        }
        // query-status is not allow-oob: QEMU refuses exec-oob for it.
        try {
            co_await c.execute("query-status", {}, {.out_of_band = true});
            BOOST_FAIL("no exception");
        } catch (const qmp::command_error& x) {
            BOOST_TEST(x.desc().find("OOB") != std::string::npos, x.desc());
        }
        auto text = co_await c.human_monitor_command("info status");
        BOOST_TEST(text.find("VM status: paused") != std::string::npos, text);
        BOOST_TEST((c.end() == qmp::connection_end::open));
    });
}

BOOST_AUTO_TEST_CASE(quit_is_a_clean_exit) {
    run([]() -> asio::awaitable<void> {
        localvm::test::qemu_process qemu;
        co_await qemu.wait_for_socket(20s);
        auto c = co_await qmp::client::connect(qemu.socket());
        auto shutdown = c.subscribe("SHUTDOWN");
        co_await c.quit();
        auto e = co_await shutdown.next(10s);
        BOOST_TEST(e.data.at("reason").as_string() == "host-qmp-quit");
        BOOST_TEST((co_await c.wait_closed(10s) == qmp::connection_end::clean));
        BOOST_TEST(c.shutdown_event().has_value());
        BOOST_TEST(co_await qemu.wait() == 0);
        try {
            co_await c.query_status();
            BOOST_FAIL("no exception");
        } catch (const localvm::error& x) {
            BOOST_TEST(x.code() == errc::monitor_closed);
        }
    });
}

BOOST_AUTO_TEST_CASE(kill_9_is_a_crash) {
    run([]() -> asio::awaitable<void> {
        localvm::test::qemu_process qemu;
        co_await qemu.wait_for_socket(20s);
        auto c = co_await qmp::client::connect(qemu.socket());
        co_await c.query_status();
        qemu.kill(SIGKILL);
        BOOST_TEST((co_await c.wait_closed(10s) == qmp::connection_end::unexpected));
        BOOST_TEST(!c.shutdown_event());
        try {
            co_await c.execute("query-status");
            BOOST_FAIL("no exception");
        } catch (const localvm::error& x) {
            BOOST_TEST(x.code() == errc::monitor_closed);
        }
        BOOST_TEST(co_await qemu.wait() == 128 + SIGKILL);
    });
}

BOOST_AUTO_TEST_CASE(lanes_over_three_monitors) {
    run([]() -> asio::awaitable<void> {
        localvm::test::qemu_process qemu(3);
        co_await qemu.wait_for_socket(20s);
        auto c = co_await qmp::client::connect_lanes(qemu.sockets(), {.enable_oob = true});
        BOOST_TEST(c.lanes() == 3u);
        BOOST_TEST(c.oob_enabled());
        auto ex = co_await asio::this_coro::executor;
        auto events = c.subscribe();

        // Overlapping commands, spread over the lanes, each with its reply.
        int running = 48, ok = 0;
        asio::steady_timer all_done(ex, std::chrono::steady_clock::time_point::max());
        for (int i = 0; i < 48; ++i)
            asio::co_spawn(
                ex,
                [&]() -> asio::awaitable<void> {
                    auto st = co_await c.query_status();
                    ok += st.status == "prelaunch";
                },
                [&](std::exception_ptr e) {
                    BOOST_TEST(!e);
                    if (--running == 0)
                        all_done.cancel();
                });
        boost::system::error_code ec;
        co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        BOOST_TEST(ok == 48);

        // Each event once, though all three monitors get it.
        co_await c.cont();
        co_await c.stop();
        BOOST_TEST((co_await events.next(10s)).name == "RESUME");
        BOOST_TEST((co_await events.next(10s)).name == "STOP");
        BOOST_TEST((co_await c.query_status()).status == "paused");
        BOOST_TEST(!events.try_next());

        co_await c.quit();
        BOOST_TEST((co_await events.next(10s)).name == "SHUTDOWN");
        BOOST_TEST((co_await c.wait_closed(10s) == qmp::connection_end::clean));
        BOOST_TEST(co_await qemu.wait() == 0);
        BOOST_TEST(!events.try_next());
    });
}
