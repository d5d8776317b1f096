#define BOOST_TEST_MODULE console_wait
#include <localvm/console/log.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>

#include <spawn.h>
#include <sys/wait.h>

extern char** environ;

#include "common.hpp"

using namespace std::chrono_literals;
using console_test::append;
using console_test::overwrite;
using console_test::temp_dir;
using localvm::errc;
using localvm::console::console_log;
using localvm::console::text_matcher;
using localvm::console::wait_for_console;
using localvm::console::wait_options;
namespace asio = boost::asio;
namespace ex = asio::experimental;

namespace {

// Far longer than any test's run_coroutine deadline: a wait that is not woken
// by its event fails the test through that deadline, not through this one.
constexpr auto forever = localvm::no_deadline;
constexpr auto test_deadline = 20s;

// Lets the other coroutines run until they park on their events.
asio::awaitable<void> yield_a_while() {
    for (int i = 0; i < 20; ++i)
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

// Runs `wait` and `writer` side by side; returns what `wait` returned.
asio::awaitable<std::string> with_writer(asio::awaitable<std::string> wait,
                                         std::function<asio::awaitable<void>()> writer) {
    auto exec = co_await asio::this_coro::executor;
    auto [order, wait_ex, line, writer_ex] =
        co_await ex::make_parallel_group(asio::co_spawn(exec, std::move(wait), asio::deferred),
                                         asio::co_spawn(exec, writer(), asio::deferred))
            .async_wait(ex::wait_for_all(), asio::use_awaitable);
    if (writer_ex)
        std::rethrow_exception(writer_ex);
    if (wait_ex)
        std::rethrow_exception(wait_ex);
    co_return line;
}

template <typename F> localvm::error expect_error(F&& f) {
    try {
        f();
    } catch (const localvm::error& e) {
        return e;
    }
    BOOST_FAIL("no localvm::error thrown");
    throw;
}

} // namespace

BOOST_AUTO_TEST_CASE(matcher_by_substring_and_regex) {
    text_matcher sub("login:");
    BOOST_TEST(sub.matches("vm login: "));
    BOOST_TEST(!sub.matches("vm logout"));
    BOOST_TEST(sub.description() == "\"login:\"");
    auto re = text_matcher::regex("ttyS[0-9]$");
    BOOST_TEST(re.matches("Debian GNU/Linux 12 vm ttyS0"));
    BOOST_TEST(!re.matches("ttyS0 is here"));
    BOOST_TEST(re.description() == "regex /ttyS[0-9]$/");
    text_matcher raw(std::regex("^a+$"));
    BOOST_TEST(raw.matches("aaa"));
    auto e = expect_error([] { text_matcher::regex("(unclosed"); });
    BOOST_TEST(e.code() == errc::invalid_argument);
}

BOOST_AUTO_TEST_CASE(finds_text_already_in_the_log) {
    temp_dir dir;
    append(dir / "c.log", "a\r\nReached target \x1b[0;1;39mMulti-User System\x1b[0m.\r\nb\r\n");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto line = co_await wait_for_console(dir / "c.log", "Multi-User System", forever);
            BOOST_TEST(line == "Reached target Multi-User System.");
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(finds_text_appended_later_including_a_prompt_without_newline) {
    temp_dir dir;
    auto log = dir / "c.log";
    append(log, "Booting\r\n");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto line = co_await with_writer(wait_for_console(log, "login:", forever),
                                             [&]() -> asio::awaitable<void> {
                                                 co_await yield_a_while();
                                                 append(log, "Debian GNU/Linux 12 vm ttyS0\r\n");
                                                 co_await yield_a_while();
                                                 append(log, "\r\nvm login: ");
                                             });
            BOOST_TEST(line == "vm login: ");
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(complete_lines_only_when_asked) {
    temp_dir dir;
    auto log = dir / "c.log";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            wait_options opts;
            opts.match_partial_line = false;
            auto line = co_await with_writer(
                wait_for_console(log, text_matcher::regex("^ready"), forever, {}, opts),
                [&]() -> asio::awaitable<void> {
                    co_await yield_a_while();
                    append(log, "ready");
                    co_await yield_a_while();
                    append(log, " and done\n");
                });
            BOOST_TEST(line == "ready and done");
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(regex_on_a_line_split_across_many_writes) {
    temp_dir dir;
    auto log = dir / "c.log";
    append(log, "");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto line = co_await with_writer(
                wait_for_console(log, text_matcher::regex("vm ttyS[0-9]$"), forever),
                [&]() -> asio::awaitable<void> {
                    for (auto piece :
                         {"Debian GNU/", "Linux 12 v", "m tty", "S", "0", "\r", "\n"}) {
                        co_await yield_a_while();
                        append(log, piece);
                    }
                });
            BOOST_TEST(line == "Debian GNU/Linux 12 vm ttyS0");
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(text_written_by_another_process) {
    temp_dir dir;
    auto log = dir / "c.log";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto line = co_await with_writer(
                wait_for_console(log, "from the child", forever), [&]() -> asio::awaitable<void> {
                    co_await yield_a_while();
                    std::string script =
                        "printf 'partial ' >> \"$0\"; printf 'from the child\\r\\n' >> \"$0\"";
                    std::string file = log.string();
                    std::vector<char*> argv{const_cast<char*>("sh"), const_cast<char*>("-c"),
                                            script.data(), file.data(), nullptr};
                    pid_t child;
                    BOOST_REQUIRE(
                        ::posix_spawnp(&child, "sh", nullptr, nullptr, argv.data(), environ) == 0);
                    int status = 0;
                    ::waitpid(child, &status, 0); // sh exits at once; reaps it
                    BOOST_TEST(status == 0);
                });
            BOOST_TEST(line == "partial from the child");
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(log_created_after_the_wait_began) {
    temp_dir dir;
    auto log = dir / "c.log";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto line = co_await with_writer(wait_for_console(log, "login:", forever),
                                             [&]() -> asio::awaitable<void> {
                                                 co_await yield_a_while();
                                                 append(dir / "unrelated", "noise\n");
                                                 co_await yield_a_while();
                                                 append(log, "vm login: ");
                                             });
            BOOST_TEST(line == "vm login: ");
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(only_new_output_and_truncation) {
    temp_dir dir;
    auto log = dir / "c.log";
    append(log, "old boot\r\nvm login: \r\n");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            wait_options opts;
            opts.start_offset = console_log::end;
            auto line = co_await with_writer(wait_for_console(log, "login:", forever, {}, opts),
                                             [&]() -> asio::awaitable<void> {
                                                 co_await yield_a_while();
                                                 append(log, "new boot\r\n");
                                                 co_await yield_a_while();
                                                 overwrite(log, "after truncation login: ");
                                             });
            BOOST_TEST(line == "after truncation login: ");

            opts.start_offset = 6; // "after " skipped
            line = co_await wait_for_console(log, "truncation", forever, {}, opts);
            BOOST_TEST(line == "truncation login: ");
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(deadline_fails_with_timeout_and_the_tail) {
    temp_dir dir;
    auto log = dir / "c.log";
    append(log, "Booting\r\nKernel panic - not syncing: VFS\r\n");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            try {
                co_await wait_for_console(log, "login:", 50ms);
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
                std::string d = e.diagnostic();
                BOOST_TEST(d.find("\"login:\"") != std::string::npos, d);
                BOOST_TEST(d.find("50 ms") != std::string::npos, d);
                BOOST_TEST(d.find("  | Kernel panic - not syncing: VFS") != std::string::npos, d);
                BOOST_TEST(d.find(log.string()) != std::string::npos, d);
            }
            try {
                co_await wait_for_console(dir / "none.log", "login:", 1ms);
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
                BOOST_TEST(e.diagnostic().find("empty or missing") != std::string::npos);
            }
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(abort_hook_fails_at_once_with_guest_died) {
    temp_dir dir;
    auto log = dir / "c.log";
    append(log, "Booting\r\nqemu: fatal error\r\n");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            // The "QEMU pidfd": readable once the other end closes.
            asio::local::stream_protocol::socket qemu(exec), watcher(exec);
            asio::local::connect_pair(qemu, watcher);
            auto hook = [&]() -> asio::awaitable<std::string> {
                co_await watcher.async_wait(asio::socket_base::wait_read, asio::use_awaitable);
                co_return "QEMU exited with status 1";
            };
            try {
                co_await with_writer(wait_for_console(log, "login:", forever, hook),
                                     [&]() -> asio::awaitable<void> {
                                         co_await yield_a_while();
                                         qemu.close();
                                     });
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::guest_died);
                BOOST_TEST(e.diagnostic().find("  | qemu: fatal error") != std::string::npos,
                           e.diagnostic());
                // The hook's own diagnostic is in the error.
                BOOST_TEST(e.diagnostic().find("QEMU exited with status 1") != std::string::npos,
                           e.diagnostic());
            }
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(abort_hook_still_sees_text_written_just_before) {
    temp_dir dir;
    auto log = dir / "c.log";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            // The hook completes at once, yet the text is there: it wins.
            append(log, "vm login: ");
            int calls = 0;
            auto hook = [&]() -> asio::awaitable<std::string> {
                ++calls;
                co_return "";
            };
            auto line = co_await wait_for_console(log, "login:", forever, hook);
            BOOST_TEST(line == "vm login: ");
            try {
                co_await wait_for_console(log, "vm", forever, hook,
                                          wait_options{.start_offset = console_log::end});
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::guest_died);
            }
            BOOST_TEST(calls == 1); // the first wait matched before racing
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(an_exception_from_the_hook_propagates) {
    temp_dir dir;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto hook = []() -> asio::awaitable<std::string> {
                localvm::throw_error(errc::io_error, "pidfd broke");
                co_return "";
            };
            try {
                co_await wait_for_console(dir / "c.log", "x", forever, hook);
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::io_error);
                BOOST_TEST(e.diagnostic() == "pidfd broke");
            }
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(a_missing_directory_fails_at_once) {
    temp_dir dir;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            try {
                co_await wait_for_console(dir / "gone" / "c.log", "x", forever);
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::not_found);
            }
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(cancellation_stops_the_wait_and_the_hook) {
    temp_dir dir;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            asio::steady_timer hook_timer(exec, asio::steady_timer::time_point::max());
            bool hook_cancelled = false;
            auto hook = [&]() -> asio::awaitable<std::string> {
                boost::system::error_code ec;
                co_await hook_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                hook_cancelled = ec == asio::error::operation_aborted;
                co_return "";
            };
            // The other racer completes first; the group cancels the wait.
            auto [order, wait_ex, line, other_ex] =
                co_await ex::make_parallel_group(
                    asio::co_spawn(exec, wait_for_console(dir / "c.log", "x", forever, hook),
                                   asio::deferred),
                    asio::co_spawn(exec, yield_a_while(), asio::deferred))
                    .async_wait(ex::wait_for_one(), asio::use_awaitable);
            BOOST_TEST(order[0] == 1u);
            BOOST_REQUIRE(wait_ex);
            try {
                std::rethrow_exception(wait_ex);
            } catch (const boost::system::system_error& e) {
                BOOST_TEST(e.code() == asio::error::operation_aborted, e.what());
            }
            BOOST_TEST(hook_cancelled);
        },
        test_deadline);
}

// A long log is consumed a chunk per turn of the io_context: another
// coroutine runs between the chunks instead of waiting for the whole scan.
BOOST_AUTO_TEST_CASE(a_large_log_is_read_in_bounded_steps) {
    temp_dir dir;
    auto log = dir / "console.log";
    std::string line(99, 'x');
    line += '\n';
    std::string big;
    while (big.size() < 16 * 1024 * 1024)
        big += line;
    append(log, big + "the end\n");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            bool done = false;
            int turns = 0; // the ticker's turns while the wait scanned
            auto wait = [&]() -> asio::awaitable<std::string> {
                auto found = co_await wait_for_console(log, "the end", forever);
                done = true;
                co_return found;
            };
            auto ticker = [&]() -> asio::awaitable<void> {
                while (!done) {
                    ++turns;
                    co_await asio::post(exec, asio::use_awaitable);
                }
            };
            auto found = co_await with_writer(wait(), ticker);
            BOOST_TEST(found == "the end");
            // 16 MiB at most 1 MiB per turn: the ticker ran between them.
            BOOST_TEST(turns >= 8, "the ticker ran " << turns << " times");
        },
        test_deadline);
}
