// wait_for_banner against in-process fake listeners on 127.0.0.1, on the
// test's own io_context: accept-and-close (hostfwd with nothing behind it),
// accept-and-stay-silent, a banner that starts at an event, the abort hook.
#define BOOST_TEST_MODULE ssh_probe
#include <localvm/ssh/probe.hpp>

#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using localvm::errc;
using localvm::ssh::probe_options;
using localvm::ssh::wait_for_banner;

namespace {

const std::string banner = "SSH-2.0-FakeSSH_1.0";

// Completion handler for helper coroutines: a failure surfaces from run().
const auto rethrow = [](std::exception_ptr e) {
    if (e)
        std::rethrow_exception(e);
};

// A one-shot event: wait() completes once fire() was called (or at once if
// it already was). No sleeping: a timer that never expires, cancelled.
class event {
public:
    explicit event(asio::any_io_executor ex) : timer_(ex, asio::steady_timer::time_point::max()) {}
    void fire() {
        fired_ = true;
        timer_.cancel();
    }
    bool fired() const { return fired_; }
    asio::awaitable<void> wait() {
        while (!fired_) {
            auto [ec] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (!fired_ && ec == asio::error::operation_aborted) {
                auto cs = co_await asio::this_coro::cancellation_state;
                if (cs.cancelled() != asio::cancellation_type::none)
                    throw boost::system::system_error(asio::error::operation_aborted);
            }
        }
    }

private:
    asio::steady_timer timer_;
    bool fired_ = false;
};

// Listens on 127.0.0.1:<free port>. Before `ready` fires, each accepted
// connection is closed at once (`close_early`) or held silent; when it
// fires, held connections get the banner (unless `held_stay_silent`: what
// slirp does to a connection whose SYN to the guest was lost), as do all
// later ones. Counts the connections the probe holds open at once.
struct fake_listener {
    tcp::acceptor acceptor;
    bool close_early;
    bool held_stay_silent = false;
    // The first `close_first` connections are closed at once whatever the
    // state (the guest's reset: its network is up, nothing listens yet).
    int close_first = 0;
    // When set, the listener becomes ready (`fire`) as it accepts this
    // connection: a count of retries, not a time, decides (no wall clock).
    int fire_at_accept = 0;
    // Once ready, the banner comes this long after the accept (0: at once):
    // a sshd slow to fork and exec its session.
    std::chrono::milliseconds banner_delay{0};
    event ready;
    event all_closed;
    bool probe_returned = false;
    std::vector<std::shared_ptr<tcp::socket>> held;
    int accepted = 0;
    int open_now = 0;
    int max_open = 0;

    fake_listener(asio::any_io_executor ex, bool close_early_)
        : acceptor(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
          close_early(close_early_), ready(ex), all_closed(ex) {}

    // Reads until the probe closes its end.
    asio::awaitable<void> watch(std::shared_ptr<tcp::socket> s) {
        ++open_now;
        max_open = std::max(max_open, open_now);
        std::array<char, 64> sink;
        for (;;) {
            auto [ec, n] = co_await s->async_read_some(asio::buffer(sink),
                                                       asio::as_tuple(asio::use_awaitable));
            if (ec)
                break;
        }
        --open_now;
        check_closed();
    }
    // Once the probe returned: fires `all_closed` when nothing is open.
    void check_closed() {
        if (probe_returned && open_now == 0)
            all_closed.fire();
    }

    std::uint16_t port() const { return acceptor.local_endpoint().port(); }

    // The end of a test: stops accepting, then waits until every connection
    // the probe made is closed, so no watcher outlives this object (it lives
    // in the test's frame).
    asio::awaitable<void> finish() {
        acceptor.close();
        probe_returned = true;
        check_closed();
        co_await all_closed.wait();
    }

    asio::awaitable<void> send_banner(std::shared_ptr<tcp::socket> s) {
        std::string line = "not ssh yet\r\n" + banner + "\r\n";
        co_await asio::async_write(*s, asio::buffer(line), asio::as_tuple(asio::use_awaitable));
    }

    // The banner after `banner_delay`, also to a probe that has gone (the
    // write fails then, as sshd's would).
    asio::awaitable<void> send_banner_later(std::shared_ptr<tcp::socket> s) {
        asio::steady_timer t(acceptor.get_executor(), banner_delay);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        co_await send_banner(s);
    }

    void fire() {
        ready.fire();
        if (held_stay_silent)
            return;
        for (auto& s : held)
            asio::co_spawn(acceptor.get_executor(), send_banner(s), rethrow);
    }

    asio::awaitable<void> serve() {
        for (;;) {
            auto s = std::make_shared<tcp::socket>(acceptor.get_executor());
            auto [ec] = co_await acceptor.async_accept(*s, asio::as_tuple(asio::use_awaitable));
            if (ec)
                co_return;
            ++accepted;
            if (accepted == fire_at_accept)
                fire();
            if (accepted <= close_first)
                continue; // s goes out of scope, closing the connection
            if (ready.fired() || !close_early)
                asio::co_spawn(acceptor.get_executor(), watch(s), rethrow);
            if (ready.fired() && banner_delay.count() > 0) {
                asio::co_spawn(acceptor.get_executor(), send_banner_later(s), rethrow);
                held.push_back(s);
            } else if (ready.fired()) {
                co_await send_banner(s);
                held.push_back(s); // kept open, as an SSH server would
            } else if (!close_early) {
                held.push_back(s);
            } // else: s goes out of scope, closing the connection
        }
    }
};

asio::awaitable<void> after(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
}

template <class F>
void expect_error(F&& f, errc code, std::vector<std::string> fragments) {
    try {
        f();
        BOOST_FAIL("no exception");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == localvm::make_error_code(code), e.what());
        for (auto& frag : fragments)
            BOOST_TEST(std::string(e.what()).find(frag) != std::string::npos,
                       "'" << frag << "' not in: " << e.what());
    }
}

} // namespace

BOOST_AUTO_TEST_CASE(closing_listener_then_banner) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, true);
        l.fire_at_accept = 4; // three connections closed at once, then the banner
        asio::co_spawn(ex, l.serve(), rethrow);
        auto got = co_await wait_for_banner("127.0.0.1", l.port());
        BOOST_TEST(got == banner);
        BOOST_TEST(l.ready.fired());
        BOOST_TEST(l.accepted >= 4); // it retried after each close
        co_await l.finish();
    }, 30s);
}

BOOST_AUTO_TEST_CASE(silent_listener_banner_arrives_on_the_same_connection) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, false);
        asio::co_spawn(ex, l.serve(), rethrow);
        asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
            co_await after(300ms);
            l.fire();
        }, rethrow);
        probe_options o;
        o.attempt_timeout = 20s; // longer than the test: a second connection would be a bug
        o.attempt_interval = 20s; // one connection at a time
        auto got = co_await wait_for_banner("127.0.0.1", l.port(), o);
        BOOST_TEST(got == banner);
        BOOST_TEST(l.accepted == 1);
        co_await l.finish();
    }, 30s);
}

// slirp before the guest's network is up: the held connection stays silent
// for good (its SYN retransmission to the guest backs off), a fresh one gets
// the banner at once. The probe must not sit on the first connection.
BOOST_AUTO_TEST_CASE(silent_listener_banner_comes_on_a_fresh_connection) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, false);
        l.held_stay_silent = true;
        asio::co_spawn(ex, l.serve(), rethrow);
        asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
            co_await after(600ms);
            l.fire();
        }, rethrow);
        probe_options o;
        o.attempt_timeout = 60s; // a probe that holds one connection never sees the banner
        o.attempt_interval = 250ms;
        o.max_open_attempts = 12;
        o.timeout = 10s;
        auto got = co_await wait_for_banner("127.0.0.1", l.port(), o);
        BOOST_TEST(got == banner);
        BOOST_TEST(l.accepted >= 2);
        BOOST_TEST(l.max_open >= 2); // earlier connections stayed open meanwhile
        BOOST_TEST(l.max_open <= o.max_open_attempts);
        // Every connection is closed when the probe returns.
        co_await l.finish();
    }, 30s);
}

// A restored guest under TCG on a loaded host: sshd answers, but takes
// longer than attempt_interval to fork and exec the session that sends the
// banner. Once the guest answered (here a reset first), the probe waits for
// the banner on one connection instead of replacing it every 500 ms: the
// replacing probe never saw a banner, and every connection it dropped cost
// the guest one more sshd session (a cloud clone sat at MaxStartups for good).
BOOST_AUTO_TEST_CASE(slow_banner_after_the_guest_answered_is_awaited) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, false);
        l.close_first = 1;
        l.banner_delay = 1200ms;
        l.fire();
        asio::co_spawn(ex, l.serve(), rethrow);
        probe_options o; // the defaults: 500 ms interval, one at a time
        o.timeout = 10s;
        auto got = co_await wait_for_banner("127.0.0.1", l.port(), o);
        BOOST_TEST(got == banner);
        BOOST_TEST(l.accepted == 2); // the reset, then one that waited for its banner
        BOOST_TEST(l.max_open == 1);
        co_await l.finish();
    }, 30s);
}

// The same sshd behind a network known to be up (a clone restored from a
// snapshot of a running guest): no reset needed, the first connection waits.
BOOST_AUTO_TEST_CASE(slow_banner_with_the_network_known_up_is_awaited) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, false);
        l.banner_delay = 1200ms;
        l.fire();
        asio::co_spawn(ex, l.serve(), rethrow);
        probe_options o;
        o.timeout = 10s;
        o.network_up = true;
        auto got = co_await wait_for_banner("127.0.0.1", l.port(), o);
        BOOST_TEST(got == banner);
        BOOST_TEST(l.accepted == 1);
        co_await l.finish();
    }, 30s);
}

BOOST_AUTO_TEST_CASE(open_connections_are_bounded) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, false); // silent forever
        asio::co_spawn(ex, l.serve(), rethrow);
        probe_options o;
        o.attempt_interval = 5ms;
        o.max_open_attempts = 3;
        o.timeout = 300ms;
        try {
            co_await wait_for_banner("127.0.0.1", l.port(), o);
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable));
        }
        BOOST_TEST(l.accepted > 3);
        BOOST_TEST(l.max_open == 3);
        co_await l.finish();
    }, 30s);
}

BOOST_AUTO_TEST_CASE(silent_listener_past_the_attempt_timeout_reconnects) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, false);
        asio::co_spawn(ex, l.serve(), rethrow);
        probe_options o;
        o.attempt_timeout = 50ms;
        o.timeout = 400ms;
        try {
            co_await wait_for_banner("127.0.0.1", l.port(), o);
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable));
            std::string what = e.what();
            BOOST_TEST(what.find("127.0.0.1:" + std::to_string(l.port())) != std::string::npos, what);
            BOOST_TEST(what.find("no SSH banner within") != std::string::npos, what);
        }
        BOOST_TEST(l.accepted >= 3);
        co_await l.finish();
    }, 30s);
}

BOOST_AUTO_TEST_CASE(refused_until_the_deadline_is_ssh_unreachable) {
    // A port that was just free: nothing listens there.
    std::uint16_t port;
    {
        asio::io_context ctx;
        tcp::acceptor a(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        port = a.local_endpoint().port();
    }
    expect_error(
        [&] {
            localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
                probe_options o;
                o.timeout = 200ms;
                co_await wait_for_banner("127.0.0.1", port, o);
            }, 30s);
        },
        errc::ssh_unreachable,
        {"127.0.0.1:" + std::to_string(port), "within 200 ms", "last: connect: Connection refused"});
}

BOOST_AUTO_TEST_CASE(bad_arguments) {
    expect_error(
        [] {
            localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
                co_await wait_for_banner("127.0.0.1", 0);
            }, 30s);
        },
        errc::invalid_argument, {"port 0"});
    expect_error(
        [] {
            localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
                probe_options o;
                o.timeout = 0ms;
                co_await wait_for_banner("127.0.0.1", 22, o);
            }, 30s);
        },
        errc::invalid_argument, {"positive"});
}

BOOST_AUTO_TEST_CASE(abort_hook_ends_the_wait_with_guest_died) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, true); // never sends a banner
        asio::co_spawn(ex, l.serve(), rethrow);
        event qemu_exited(ex);
        asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
            co_await after(100ms);
            qemu_exited.fire();
        }, rethrow);
        int accepted_at_abort = -1;
        auto hook = [&]() -> asio::awaitable<std::string> {
            co_await qemu_exited.wait();
            accepted_at_abort = l.accepted;
            co_return "qemu exited with status 1; console: Kernel panic";
        };
        try {
            co_await wait_for_banner("127.0.0.1", l.port(), {}, hook); // default timeout: 120 s
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::make_error_code(errc::guest_died));
            BOOST_TEST(e.diagnostic().find("Kernel panic") != std::string::npos, e.what());
            BOOST_TEST(e.diagnostic().find("127.0.0.1:" + std::to_string(l.port())) != std::string::npos);
        }
        BOOST_TEST(accepted_at_abort >= 1);
        // The probe stopped with the hook: at most a connect already in
        // flight (completed by the kernel) was accepted after it.
        BOOST_TEST(l.accepted <= accepted_at_abort + 1);
        co_await l.finish();
    }, 30s);
}

BOOST_AUTO_TEST_CASE(abort_hook_is_cancelled_when_the_banner_arrives) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, false);
        l.fire();
        asio::co_spawn(ex, l.serve(), rethrow);
        event never(ex);
        bool hook_cancelled = false;
        auto hook = [&]() -> asio::awaitable<std::string> {
            try {
                co_await never.wait();
            } catch (const boost::system::system_error& e) {
                hook_cancelled = e.code() == asio::error::operation_aborted;
                throw;
            }
            co_return "unreachable";
        };
        auto got = co_await wait_for_banner("127.0.0.1", l.port(), {}, hook);
        BOOST_TEST(got == banner);
        BOOST_TEST(hook_cancelled);
        co_await l.finish();
    }, 30s);
}

BOOST_AUTO_TEST_CASE(a_failing_probe_does_not_wait_for_the_hook) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        event never(ex);
        auto hook = [&]() -> asio::awaitable<std::string> {
            co_await never.wait();
            co_return "unreachable";
        };
        probe_options o;
        o.timeout = 100ms;
        try {
            co_await wait_for_banner("127.0.0.1", 1, o, hook);
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable));
        }
    }, 30s);
}

BOOST_AUTO_TEST_CASE(cancellation_stops_the_probe) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        fake_listener l(ex, false); // silent forever
        asio::co_spawn(ex, l.serve(), rethrow);
        asio::steady_timer t(ex, 100ms);
        auto [order, e0, r0, e1] =
            co_await asio::experimental::make_parallel_group(
                asio::co_spawn(ex, wait_for_banner("127.0.0.1", l.port()), asio::deferred),
                t.async_wait(asio::deferred))
                .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
        BOOST_TEST(order[0] == 1u);
        BOOST_TEST(!e1);
        BOOST_TEST_REQUIRE(static_cast<bool>(e0));
        try {
            std::rethrow_exception(e0);
        } catch (const boost::system::system_error& e) {
            BOOST_TEST(e.code() == asio::error::operation_aborted);
        }
        co_await l.finish();
    }, 30s);
}
