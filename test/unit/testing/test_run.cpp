#define BOOST_TEST_MODULE testing_run
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <stdexcept>

namespace asio = boost::asio;
using localvm::errc;
using localvm::testing::pending;
using localvm::testing::pending_now;
using localvm::testing::run_coroutine;
using localvm::testing::step;
using namespace std::chrono_literals;

namespace {

asio::awaitable<void> forever() {
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::hours(24));
    co_await t.async_wait(asio::use_awaitable);
}

asio::awaitable<int> answer() { co_return 42; }

std::string timeout_message(std::function<asio::awaitable<void>()> body) {
    try {
        run_coroutine(std::move(body), 50ms, "the body");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == errc::timeout);
        return e.what();
    }
    BOOST_FAIL("run_coroutine did not time out");
    return {};
}

} // namespace

BOOST_AUTO_TEST_CASE(a_deadline_names_what_was_pending) {
    auto msg = timeout_message([]() -> asio::awaitable<void> {
        co_await step("answer", answer()); // finished: no longer pending
        pending outer("boot of vm 'a'");
        co_await step("waiting for godot", forever());
    });
    BOOST_TEST(msg.find("the body did not finish within 50 ms") != std::string::npos, msg);
    BOOST_TEST(msg.find("boot of vm 'a' (for ") != std::string::npos, msg);
    BOOST_TEST(msg.find("waiting for godot (for ") != std::string::npos, msg);
    BOOST_TEST(msg.find("answer") == std::string::npos, msg);
    // Oldest first.
    BOOST_TEST(msg.find("boot of vm 'a'") < msg.find("waiting for godot"), msg);
}

BOOST_AUTO_TEST_CASE(a_deadline_without_pending_marks_says_so) {
    auto msg = timeout_message([]() -> asio::awaitable<void> { co_await forever(); });
    BOOST_TEST(msg.find("nothing was marked pending") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(pending_marks_come_and_go) {
    BOOST_TEST(pending_now().empty());
    {
        pending outside("not in a run"); // does nothing outside run_coroutine
        BOOST_TEST(pending_now().empty());
    }
    run_coroutine([]() -> asio::awaitable<void> {
        BOOST_TEST(pending_now().empty());
        {
            pending p("one");
            auto now = pending_now();
            BOOST_TEST(now.size() == 1u);
            BOOST_TEST(now.at(0).starts_with("one (for "));
        }
        BOOST_TEST(pending_now().empty());
        int v = co_await step("answer", answer());
        BOOST_TEST(v == 42);
        BOOST_TEST(pending_now().empty());
    });
    BOOST_TEST(pending_now().empty());
}

BOOST_AUTO_TEST_CASE(an_exception_from_the_body_propagates) {
    BOOST_CHECK_THROW(run_coroutine([]() -> asio::awaitable<void> {
                          pending p("about to throw");
                          throw std::runtime_error("boom");
                          co_return;
                      }),
                      std::runtime_error);
    BOOST_TEST(pending_now().empty());
}

BOOST_AUTO_TEST_CASE(runs_nest_with_their_own_marks) {
    run_coroutine([]() -> asio::awaitable<void> {
        pending p("outer mark");
        auto inner = timeout_message([]() -> asio::awaitable<void> {
            pending q("inner mark");
            co_await forever();
        });
        BOOST_TEST(inner.find("inner mark") != std::string::npos, inner);
        BOOST_TEST(inner.find("outer mark") == std::string::npos, inner);
        auto now = pending_now();
        BOOST_TEST(now.size() == 1u);
        co_return;
    });
}
