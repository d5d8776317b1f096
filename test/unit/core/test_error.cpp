#define BOOST_TEST_MODULE error
#include <localvm/atomic_file.hpp>
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <set>
#include <sstream>

using localvm::errc;

BOOST_AUTO_TEST_CASE(every_code_has_a_distinct_readable_message) {
    std::set<std::string> seen;
    for (int v = 1; v <= static_cast<int>(errc::io_error); ++v) {
        auto ec = localvm::make_error_code(static_cast<errc>(v));
        BOOST_TEST(std::string(ec.category().name()) == "localvm");
        auto msg = ec.message();
        BOOST_TEST(!msg.empty());
        BOOST_TEST(msg.find("unknown") == std::string::npos);
        BOOST_TEST(seen.insert(msg).second, "duplicate message: " << msg);
    }
    BOOST_TEST(localvm::make_error_code(errc::already_running).message() == "VM is already running");
    BOOST_TEST(localvm::make_error_code(errc::not_running).message() == "VM is not running");
    BOOST_TEST(localvm::make_error_code(static_cast<errc>(999)).message().find("999") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(error_carries_code_and_diagnostic) {
    try {
        localvm::throw_error(errc::timeout, "waiting for SSH on 127.0.0.1:2222");
        BOOST_FAIL("no throw");
    } catch (const boost::system::system_error& e) {
        BOOST_TEST(e.code() == errc::timeout);
        BOOST_TEST(e.code() == localvm::make_error_code(errc::timeout));
        std::string what = e.what();
        BOOST_TEST(what.find("waiting for SSH on 127.0.0.1:2222") != std::string::npos);
        BOOST_TEST(what.find("timed out") != std::string::npos);
        auto* le = dynamic_cast<const localvm::error*>(&e);
        BOOST_REQUIRE(le);
        BOOST_TEST(le->diagnostic() == "waiting for SSH on 127.0.0.1:2222");
    }
}

namespace fs = std::filesystem;

static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

BOOST_AUTO_TEST_CASE(atomic_write_replaces_and_leaves_no_temp_on_failure) {
    auto dir = fs::temp_directory_path() / ("localvm-atomic-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto file = dir / "state.json";
    localvm::write_file_atomic(file, "one");
    localvm::write_file_atomic(file, "two", fs::perms(0600));
    BOOST_TEST(slurp(file) == "two");
    BOOST_TEST(((fs::status(file).permissions() & fs::perms::all) == fs::perms(0600)));

    BOOST_CHECK_THROW(localvm::write_file_atomic(file,
                                                 [](const localvm::byte_writer& w) {
                                                     w("partial");
                                                     throw std::runtime_error("producer failed");
                                                 }),
                      std::runtime_error);
    BOOST_TEST(slurp(file) == "two");
    BOOST_TEST(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);

    try {
        localvm::write_file_atomic(dir / "missing" / "x", "y");
        BOOST_FAIL("no throw");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == errc::io_error);
        BOOST_TEST(std::string(e.what()).find("missing") != std::string::npos);
    }
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(run_coroutine_returns_rethrows_and_enforces_deadline) {
    int ran = 0;
    localvm::testing::run_coroutine([&]() -> boost::asio::awaitable<void> {
        ++ran;
        co_return;
    });
    BOOST_TEST(ran == 1);
    BOOST_CHECK_THROW(localvm::testing::run_coroutine([]() -> boost::asio::awaitable<void> {
        throw std::logic_error("inside");
        co_return;
    }),
                      std::logic_error);
    try {
        localvm::testing::run_coroutine(
            []() -> boost::asio::awaitable<void> {
                boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                            std::chrono::hours(1));
                co_await t.async_wait(boost::asio::use_awaitable);
            },
            std::chrono::milliseconds(50), "an hour-long wait");
        BOOST_FAIL("no throw");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == errc::timeout);
        BOOST_TEST(e.diagnostic().find("an hour-long wait") != std::string::npos);
    }
}
