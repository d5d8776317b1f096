// detail::race and detail::with_deadline (src/detail/race.hpp): the first
// completion wins, success or exception; losers are cancelled and awaited;
// cancelling the race cancels everything. detail::all: every value, or the
// first exception alone. Timers only, no processes.
#define BOOST_TEST_MODULE race
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

#include "detail/race.hpp"

namespace asio = boost::asio;
using localvm::errc;
using localvm::detail::all;
using localvm::detail::race;
using localvm::detail::with_deadline;
using localvm::testing::run_coroutine;
using namespace std::chrono_literals;

namespace {

using clock = std::chrono::steady_clock;

// What happened to one operation of a race.
struct trace {
    bool cancelled = false; // saw operation_aborted
    bool finished = false;  // ran to its end (after cleanup, when cancelled)
};

// Waits `delay`, then returns `value` or throws `failure` (if not empty).
// Cancelled, it takes one more asynchronous step before ending, so that a
// race returning before it is over would show as `finished == false`.
asio::awaitable<int> after(clock::duration delay, int value, trace& t, std::string failure = {}) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex, delay);
    try {
        co_await timer.async_wait(asio::use_awaitable);
    } catch (const boost::system::system_error& e) {
        t.cancelled = e.code() == asio::error::operation_aborted;
    }
    if (t.cancelled) {
        co_await asio::this_coro::reset_cancellation_state();
        co_await asio::post(ex, asio::use_awaitable);
        t.finished = true;
        throw boost::system::system_error(asio::error::operation_aborted, "after");
    }
    t.finished = true;
    if (!failure.empty())
        throw std::runtime_error(failure);
    co_return value;
}

asio::awaitable<void> after_void(clock::duration delay, trace& t) {
    co_await after(delay, 0, t);
}

// A result type without a default constructor.
struct named {
    explicit named(std::string n)
        : name(std::move(n)) {}
    std::string name;
};

asio::awaitable<named> make_named(std::string n) {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    co_return named(std::move(n));
}

const auto never = 1h;

} // namespace

BOOST_AUTO_TEST_CASE(first_success_wins_and_the_loser_is_cancelled_and_awaited) {
    run_coroutine(
        []() -> asio::awaitable<void> {
            trace fast, slow;
            auto r = co_await race(after(1ms, 7, fast), after(never, 8, slow));
            BOOST_TEST(r.index() == 0u);
            BOOST_TEST(std::get<0>(r) == 7);
            BOOST_TEST(fast.finished);
            BOOST_TEST(!fast.cancelled);
            BOOST_TEST(slow.cancelled);
            BOOST_TEST(slow.finished); // awaited before race returned

            trace a, b;
            auto r2 = co_await race(after(never, 1, a), after(1ms, 2, b));
            BOOST_TEST(r2.index() == 1u); // by position, though both are int
            BOOST_TEST(std::get<1>(r2) == 2);
            BOOST_TEST(a.cancelled);
            BOOST_TEST(a.finished);
        },
        10s);
}

// awaitable_operators' `||` in Boost 1.81 would wait for the slow success
// here (an hour) and return it, losing the exception.
BOOST_AUTO_TEST_CASE(first_exception_wins_and_propagates) {
    run_coroutine(
        []() -> asio::awaitable<void> {
            trace failing, slow;
            const auto begun = clock::now();
            try {
                co_await race(after(1ms, 0, failing, "first failure"), after(never, 1, slow));
                BOOST_FAIL("no exception");
            } catch (const std::runtime_error& e) {
                BOOST_TEST(std::string(e.what()) == "first failure");
            }
            BOOST_TEST((clock::now() - begun < 5s));
            BOOST_TEST(slow.cancelled);
            BOOST_TEST(slow.finished);
        },
        10s);
}

BOOST_AUTO_TEST_CASE(a_later_failure_of_the_loser_is_discarded) {
    run_coroutine(
        []() -> asio::awaitable<void> {
            trace winner, loser;
            // The loser throws its own error when cancelled (operation_aborted):
            // only the winner's value comes out.
            auto r = co_await race(after(1ms, 3, winner), after(never, 0, loser, "never seen"));
            BOOST_TEST(std::get<0>(r) == 3);
            BOOST_TEST(loser.cancelled);
        },
        10s);
}

BOOST_AUTO_TEST_CASE(more_than_two_and_void_operations) {
    run_coroutine(
        []() -> asio::awaitable<void> {
            trace a, b, c;
            auto r = co_await race(after_void(never, a), after(never, 1, b), after_void(1ms, c));
            BOOST_TEST(r.index() == 2u);
            BOOST_TEST(a.cancelled);
            BOOST_TEST(b.cancelled);
            BOOST_TEST(a.finished);
            BOOST_TEST(b.finished);

            trace d;
            auto n = co_await race(make_named("x"), after(never, 0, d));
            BOOST_TEST(std::get<0>(n).name == "x");
            BOOST_TEST(d.cancelled);
        },
        10s);
}

// Cancelling race or all cancels every operation and awaits it.
BOOST_AUTO_TEST_CASE(cancelling_race_or_all_cancels_every_operation) {
    auto cancelled = [](auto combine) {
        run_coroutine(
            [&]() -> asio::awaitable<void> {
                auto ex = co_await asio::this_coro::executor;
                trace a, b;
                asio::cancellation_signal cancel;
                // Fire the cancellation once the operations are under way.
                asio::post(ex, [&] { cancel.emit(asio::cancellation_type::terminal); });
                try {
                    co_await asio::co_spawn(
                        ex, combine(after(never, 1, a), after(never, 2, b)),
                        asio::bind_cancellation_slot(cancel.slot(), asio::use_awaitable));
                    BOOST_FAIL("no exception");
                } catch (const boost::system::system_error& e) {
                    BOOST_TEST(e.code() == asio::error::operation_aborted);
                }
                BOOST_TEST(a.cancelled);
                BOOST_TEST(b.cancelled);
                BOOST_TEST(a.finished);
                BOOST_TEST(b.finished);
            },
            10s);
    };
    cancelled([](auto x, auto y) { return race(std::move(x), std::move(y)); });
    cancelled([](auto x, auto y) { return all(std::move(x), std::move(y)); });
}

// Operations start in the order given, each up to its first suspension (a
// QMP command is queued there), and all values come back by position.
BOOST_AUTO_TEST_CASE(all_starts_in_order_and_returns_every_value) {
    run_coroutine(
        []() -> asio::awaitable<void> {
            std::string started;
            auto op = [&](char c, clock::duration delay) -> asio::awaitable<int> {
                started += c;
                trace t;
                co_return co_await after(delay, c, t);
            };
            auto r = co_await all(op('a', 5ms), op('b', 1ms), op('c', 3ms));
            BOOST_TEST(started == "abc");
            BOOST_TEST(std::get<0>(r) == 'a');
            BOOST_TEST(std::get<1>(r) == 'b');
            BOOST_TEST(std::get<2>(r) == 'c');

            trace v;
            auto mixed = co_await all(after_void(1ms, v), make_named("y"));
            BOOST_TEST(v.finished);
            BOOST_TEST(std::get<1>(mixed).name == "y");
        },
        10s);
}

// Boost 1.81's `&&` would throw asio::multiple_exceptions here: the others,
// cancelled, throw operation_aborted or their own error as well.
BOOST_AUTO_TEST_CASE(all_rethrows_the_first_exception_alone_and_awaits_the_others) {
    run_coroutine(
        []() -> asio::awaitable<void> {
            trace slow, failing, also_failing;
            const auto begun = clock::now();
            try {
                co_await all(after(never, 1, slow), after(1ms, 0, failing, "first failure"),
                             after(never, 0, also_failing, "second failure"));
                BOOST_FAIL("no exception");
            } catch (const std::runtime_error& e) {
                BOOST_TEST(std::string(e.what()) == "first failure");
            }
            BOOST_TEST((clock::now() - begun < 5s));
            BOOST_TEST(slow.cancelled);
            BOOST_TEST(slow.finished);
            BOOST_TEST(also_failing.cancelled);
            BOOST_TEST(also_failing.finished);
        },
        10s);
}

BOOST_AUTO_TEST_CASE(with_deadline_returns_throws_or_times_out_naming_what) {
    run_coroutine(
        []() -> asio::awaitable<void> {
            trace quick;
            BOOST_TEST(co_await with_deadline(after(1ms, 5, quick), 1h, "a quick thing") == 5);

            trace failing;
            try {
                co_await with_deadline(after(1ms, 0, failing, "broke"), 1h, "a failing thing");
                BOOST_FAIL("no exception");
            } catch (const std::runtime_error& e) {
                BOOST_TEST(std::string(e.what()) == "broke");
            }

            trace slow;
            try {
                co_await with_deadline(after_void(never, slow), 20ms, "the slow thing");
                BOOST_FAIL("no timeout");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
                BOOST_TEST(std::string(e.what()).find(
                               "timed out after 20 ms waiting for the slow thing") !=
                               std::string::npos,
                           e.what());
            }
            BOOST_TEST(slow.cancelled);
            BOOST_TEST(slow.finished);
        },
        10s);
}
