// A localvm user's own test program, written against the installed test kit
// (localvm-testing) and Boost.Test only. Needs no VM: it runs coroutine test
// bodies under the kit's deadline, names what was pending when one passes,
// checks the kit's own error code and that nothing leaked.
#define BOOST_TEST_MODULE consumer_kit
#include <localvm/error.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/error.hpp>
#include <localvm/testing/leaks.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <string>

namespace asio = boost::asio;
namespace lt = localvm::testing;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(a_coroutine_body_runs_to_its_end) {
    int steps = 0;
    lt::run_coroutine([&]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
        co_await t.async_wait(asio::use_awaitable);
        ++steps;
    });
    BOOST_TEST(steps == 1);
}

BOOST_AUTO_TEST_CASE(a_deadline_names_what_was_pending) {
    auto before = lt::resource_snapshot::take();
    try {
        lt::run_coroutine(
            []() -> asio::awaitable<void> {
                lt::pending p("an hour-long timer");
                asio::steady_timer t(co_await asio::this_coro::executor, 1h);
                co_await t.async_wait(asio::use_awaitable);
            },
            50ms, "the consumer's body");
        BOOST_FAIL("no timeout");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == localvm::errc::timeout);
        BOOST_TEST(std::string(e.what()).find("an hour-long timer") != std::string::npos, e.what());
    }
    auto leaks = lt::find_leaks(before);
    BOOST_TEST(leaks.clean(), leaks.describe());
}

BOOST_AUTO_TEST_CASE(check_failed_is_the_kits_own_code) {
    lt::run_coroutine([]() -> asio::awaitable<void> {
        auto what =
            co_await lt::expect_error(lt::kit_errc::check_failed, []() -> asio::awaitable<void> {
                localvm::throw_error(lt::kit_errc::check_failed, "deliberate");
                co_return;
            });
        BOOST_TEST(what.find("deliberate") != std::string::npos, what);
    });
    BOOST_TEST(std::string(make_error_code(lt::kit_errc::check_failed).category().name()) ==
               "localvm.testing");
}
