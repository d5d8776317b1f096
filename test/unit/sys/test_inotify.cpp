// sys::inotify (src/sys/inotify.hpp): waiting for a change in a directory
// with a deadline, on the io_context, without polling.
#define BOOST_TEST_MODULE sys_inotify
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "../../common/cancel.hpp"
#include "../../common/temp_dir.hpp"
#include "sys/inotify.hpp"
#include <sys/inotify.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using localvm::sys::inotify;
using localvm::testing::run_coroutine;
using lvtest::temp_dir;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(done_already_returns_at_once) {
    run_coroutine([]() -> asio::awaitable<void> {
        inotify n(co_await asio::this_coro::executor);
        int calls = 0;
        // A deadline in the past: still true, done() is asked first.
        BOOST_TEST(co_await n.wait_until([&] { return ++calls > 0; }, clock_type::now() - 1s));
        BOOST_TEST(calls == 1);
    });
}

BOOST_AUTO_TEST_CASE(a_file_created_later_wakes_the_waiter) {
    run_coroutine([]() -> asio::awaitable<void> {
        temp_dir d;
        const auto file = d.path / "appears";
        auto ex = co_await asio::this_coro::executor;
        inotify n(ex);
        BOOST_REQUIRE(n.watch(d.path, IN_CREATE | IN_MOVED_TO));
        // Created by another operation on the io_context while we wait.
        asio::steady_timer later(ex, 20ms);
        later.async_wait([&](boost::system::error_code) { std::ofstream(file) << "x"; });
        // A deadline beyond run_coroutine's: only the event can end this.
        BOOST_TEST(co_await n.wait_until([&] { return fs::exists(file); }, clock_type::now() + 1h));
    });
}

BOOST_AUTO_TEST_CASE(the_deadline_passes) {
    run_coroutine([]() -> asio::awaitable<void> {
        temp_dir d;
        inotify n(co_await asio::this_coro::executor);
        BOOST_REQUIRE(n.watch(d.path, IN_CREATE));
        const auto deadline = clock_type::now() + 50ms;
        int calls = 0;
        BOOST_TEST(!co_await n.wait_until([&] { return ++calls < 0; }, deadline));
        BOOST_TEST((clock_type::now() >= deadline));
        BOOST_TEST(calls == 2); // at once, and once more at the deadline
    });
}

BOOST_AUTO_TEST_CASE(watching_a_missing_path_fails_with_errno) {
    run_coroutine([]() -> asio::awaitable<void> {
        temp_dir d;
        inotify n(co_await asio::this_coro::executor);
        errno = 0;
        BOOST_TEST(!n.watch(d.path / "not-there", IN_MODIFY));
        BOOST_TEST(errno == ENOENT);
        BOOST_TEST(n.watch(d.path, IN_CREATE)); // the instance is still usable
    });
}

BOOST_AUTO_TEST_CASE(cancelling_the_wait) {
    run_coroutine([]() -> asio::awaitable<void> {
        temp_dir d;
        auto ex = co_await asio::this_coro::executor;
        inotify n(ex);
        BOOST_REQUIRE(n.watch(d.path, IN_CREATE));
        BOOST_TEST(co_await lvtest::ends_aborted_when_cancelled(n.wait()));
    });
}
