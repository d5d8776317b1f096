#define BOOST_TEST_MODULE console_log
#include <localvm/console/log.hpp>
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>

#include "common.hpp"

using namespace std::chrono_literals;
using console_test::append;
using console_test::overwrite;
using console_test::temp_dir;
using localvm::console::clean_line;
using localvm::console::console_log;
using localvm::console::read_tail;
using strings = std::vector<std::string>;
namespace asio = boost::asio;

BOOST_AUTO_TEST_CASE(read_tail_of_a_missing_file_is_empty) {
    temp_dir dir;
    BOOST_TEST(read_tail(dir / "nope.log", 10) == "");
    BOOST_TEST(read_tail(dir.path, 10) == ""); // a directory
}

BOOST_AUTO_TEST_CASE(read_tail_with_fewer_lines_than_asked) {
    temp_dir dir;
    append(dir / "c.log", "one\ntwo\n");
    BOOST_TEST(read_tail(dir / "c.log", 10) == "one\ntwo");
    BOOST_TEST(read_tail(dir / "c.log", 0) == "");
    append(dir / "e.log", "");
    BOOST_TEST(read_tail(dir / "e.log", 3) == "");
}

BOOST_AUTO_TEST_CASE(read_tail_keeps_the_last_lines) {
    temp_dir dir;
    std::string text;
    for (int i = 0; i < 1000; ++i)
        text += "line " + std::to_string(i) + "\n";
    append(dir / "c.log", text);
    BOOST_TEST(read_tail(dir / "c.log", 3) == "line 997\nline 998\nline 999");
    BOOST_TEST(read_tail(dir / "c.log", 1) == "line 999");
}

BOOST_AUTO_TEST_CASE(read_tail_handles_crlf_and_a_missing_final_newline) {
    temp_dir dir;
    append(dir / "c.log", "a\r\nb\r\n\r\n\r\nlogin: ");
    BOOST_TEST(read_tail(dir / "c.log", 2) == "b\nlogin: ");
    BOOST_TEST(read_tail(dir / "c.log", 5) == "a\nb\nlogin: ");
}

BOOST_AUTO_TEST_CASE(read_tail_survives_binary_junk) {
    temp_dir dir;
    std::string junk("\0\x01\xff\xfe\x1b[0;32mOK\x1b[0m\x7f\n", 19);
    append(dir / "c.log", junk + "last\n");
    BOOST_TEST(read_tail(dir / "c.log", 2) == "??OK\nlast");
}

BOOST_AUTO_TEST_CASE(read_tail_of_long_lines_reads_far_enough_back) {
    temp_dir dir;
    std::string big(200 * 1024, 'x');
    append(dir / "c.log", "first\n" + big + "\nend\n");
    auto tail = read_tail(dir / "c.log", 3);
    BOOST_TEST(tail.substr(0, 6) == "first\n");
    BOOST_TEST(tail.size() == 6 + big.size() + 4);
}

BOOST_AUTO_TEST_CASE(clean_line_strips_escapes_and_keeps_utf8) {
    BOOST_TEST(
        clean_line("[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mMulti-User\x1b[0m.") ==
        "[  OK  ] Reached target Multi-User.");
    BOOST_TEST(clean_line("a\rb\tc\x07") == "ab\tc");
    BOOST_TEST(clean_line("\x1b]0;title\x07text") == "text");
    BOOST_TEST(clean_line("\x1b(Bx\x1b"
                          "c") == "x");
    BOOST_TEST(clean_line("gr\xc3\xbc\xc3\x9f \xe2\x82\xac") == "gr\xc3\xbc\xc3\x9f \xe2\x82\xac");
    BOOST_TEST(clean_line("bad \xc3 \xed\xa0\x80 \xc0\xaf") == "bad ? ??? ??");
    BOOST_TEST(clean_line("") == "");
}

BOOST_AUTO_TEST_CASE(console_log_reads_lines_as_they_come) {
    temp_dir dir;
    auto file = dir / "c.log";
    console_log log(file);
    BOOST_TEST(log.read_lines().empty()); // missing is fine
    BOOST_TEST(log.latest_line() == "");
    append(file, "Booting\r\nsec");
    BOOST_TEST(log.read_lines() == strings{"Booting"});
    BOOST_TEST(log.partial_line() == "sec");
    BOOST_TEST(log.latest_line() == "sec");
    append(file, "ond\r\n\r\n");
    BOOST_TEST(log.read_lines() == (strings{"second", ""}));
    BOOST_TEST(log.partial_line() == "");
    BOOST_TEST(log.latest_line() == "second");
    BOOST_TEST(log.offset() == 19u);
    BOOST_TEST(log.caught_up());
}

BOOST_AUTO_TEST_CASE(console_log_from_the_end_skips_old_output) {
    temp_dir dir;
    auto file = dir / "c.log";
    append(file, "old boot\nlogin: ");
    console_log log(file, console_log::end);
    BOOST_TEST(log.read_lines().empty());
    BOOST_TEST(log.partial_line() == "");
    append(file, "\nnew boot\n");
    BOOST_TEST(log.read_lines() == (strings{"", "new boot"}));

    console_log missing(dir / "later.log", console_log::end);
    append(dir / "later.log", "first\n");
    BOOST_TEST(missing.read_lines() == strings{"first"});
}

BOOST_AUTO_TEST_CASE(console_log_restarts_after_truncation_and_replacement) {
    temp_dir dir;
    auto file = dir / "c.log";
    append(file, "aaaa\nbbbb\n");
    console_log log(file);
    BOOST_TEST(log.read_lines().size() == 2u);
    overwrite(file, "new\n");
    BOOST_TEST(log.read_lines() == strings{"new"});
    auto other = dir / "other";
    append(other, "replacement 1\nreplacement 2\n");
    std::filesystem::rename(other, file);
    BOOST_TEST(log.read_lines() == (strings{"replacement 1", "replacement 2"}));
    std::filesystem::remove(file);
    BOOST_TEST(log.read_lines().empty());
    append(file, "recreated\n");
    BOOST_TEST(log.read_lines() == strings{"recreated"});
}

BOOST_AUTO_TEST_CASE(console_log_cuts_endless_lines_and_reads_in_budgets) {
    temp_dir dir;
    auto file = dir / "c.log";
    append(file, std::string(3 * 1024 * 1024, 'z'));
    console_log log(file);
    std::size_t lines = 0, rounds = 0;
    do {
        for (auto& l : log.read_lines()) {
            BOOST_TEST(l.size() == 64u * 1024);
            ++lines;
        }
        ++rounds;
    } while (!log.caught_up());
    BOOST_TEST(lines == 48u);
    BOOST_TEST(rounds >= 3u);
}

BOOST_AUTO_TEST_CASE(wait_change_wakes_on_append_and_on_creation) {
    temp_dir dir;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto file = dir / "c.log";
            console_log log(file);
            co_await log.wait_change(); // sets the watches up, returns at once
            BOOST_TEST(log.read_lines().empty());
            auto ex = co_await asio::this_coro::executor;
            // The writer runs only once the waiter is parked on inotify.
            auto writer = [&]() -> asio::awaitable<void> {
                for (int i = 0; i < 10; ++i)
                    co_await asio::post(ex, asio::use_awaitable);
                append(file, "created\n");
            };
            co_await asio::experimental::make_parallel_group(
                asio::co_spawn(ex, log.wait_change(), asio::deferred),
                asio::co_spawn(ex, writer(), asio::deferred))
                .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
            BOOST_TEST(log.read_lines() == strings{"created"});
        },
        20s);
}

BOOST_AUTO_TEST_CASE(wait_change_in_a_missing_directory_is_not_found) {
    temp_dir dir;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            console_log log(dir / "no" / "such" / "c.log");
            try {
                co_await log.wait_change();
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == localvm::errc::not_found);
            }
        },
        20s);
}
