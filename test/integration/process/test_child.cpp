// Child processes for real: many at once, big outputs, timeouts,
// cancellation, errors, stream modes, and no leaked fds or zombies.
#define BOOST_TEST_MODULE process_child
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/testing/run.hpp>

#include "../../common/proc_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace lp = localvm::process;
namespace fs = std::filesystem;
using localvm::errc;
using namespace std::chrono_literals;
using localvm::testing::run_coroutine;

namespace {

lp::options sh(const std::string& script) {
    lp::options o;
    o.argv = {"sh", "-c", script};
    return o;
}

void check_no_zombies() {
    auto z = proc_util::zombie_children();
    BOOST_TEST(z.empty(), "zombie children left: " << z.size());
}

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string templ = (fs::temp_directory_path() / "localvm-process-XXXXXX").string();
        path = ::mkdtemp(templ.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

template <class F>
void expect_error(F&& f, errc code, std::initializer_list<std::string> needles) {
    try {
        f();
        BOOST_FAIL("no error thrown");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == code, "code " << e.code().message() << " for: " << e.what());
        for (const auto& n : needles)
            BOOST_TEST(std::string(e.what()).find(n) != std::string::npos,
                       "'" << n << "' missing from: " << e.what());
    }
}

} // namespace

// A plain function, not a lambda: a lambda coroutine's captures die with the
// lambda object, before the coroutine runs.
asio::awaitable<void> stream_lines(int i, int lines, std::vector<std::string>& outs,
                                   std::vector<std::string>& errs, int& code) {
    auto o = sh("i=0; while [ $i -lt " + std::to_string(lines) +
                " ]; do echo out $i; echo err $i >&2; i=$((i+1)); done; exit " + std::to_string(i));
    o.out.mode = lp::stream_mode::sink;
    o.out.sink = [&outs](std::string_view l) { outs.emplace_back(l); };
    o.err.mode = lp::stream_mode::sink;
    o.err.sink = [&errs](std::string_view l) { errs.emplace_back(l); };
    auto r = co_await lp::run(std::move(o));
    code = r.exit_code;
}

BOOST_AUTO_TEST_CASE(fifty_children_stream_interleaved_lines_in_order) {
    constexpr int children = 50;
    constexpr int lines = 200;
    std::vector<std::vector<std::string>> outs(children), errs(children);
    std::vector<int> codes(children, -1);
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        using op_type = decltype(asio::co_spawn(ex, std::declval<asio::awaitable<void>>(), asio::deferred));
        std::vector<op_type> ops;
        for (int i = 0; i < children; ++i) {
            ops.push_back(asio::co_spawn(ex, stream_lines(i, lines, outs[i], errs[i], codes[i]), asio::deferred));
        }
        auto [order, exceptions] = co_await asio::experimental::make_parallel_group(std::move(ops))
                                       .async_wait(asio::experimental::wait_for_all(),
                                                   asio::use_awaitable);
        for (auto& e : exceptions)
            if (e)
                std::rethrow_exception(e);
    }, 120s);
    for (int i = 0; i < children; ++i) {
        BOOST_TEST(codes[i] == i);
        BOOST_REQUIRE_EQUAL(outs[i].size(), static_cast<std::size_t>(lines));
        BOOST_REQUIRE_EQUAL(errs[i].size(), static_cast<std::size_t>(lines));
        for (int l = 0; l < lines; ++l) {
            BOOST_TEST(outs[i][l] == "out " + std::to_string(l));
            BOOST_TEST(errs[i][l] == "err " + std::to_string(l));
        }
    }
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(twenty_megabytes_on_both_streams_captured_whole) {
    constexpr std::size_t size = 20u << 20;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto o = sh("yes 0123456789abcdef | head -c " + std::to_string(size) + " & "
                    "yes ERROR-ERROR-ERR | head -c " + std::to_string(size) + " >&2; wait");
        o.out.capture_limit = 32u << 20;
        o.err.capture_limit = 32u << 20;
        auto r = co_await lp::run(std::move(o));
        BOOST_TEST(r.success());
        BOOST_REQUIRE_EQUAL(r.out.size(), size);
        BOOST_REQUIRE_EQUAL(r.err.size(), size);
        BOOST_TEST(r.out_dropped == 0u);
        BOOST_TEST(r.err_dropped == 0u);
        const std::string a = "0123456789abcdef\n", b = "ERROR-ERROR-ERR\n";
        bool out_ok = true, err_ok = true;
        for (std::size_t i = 0; i < size; ++i) {
            out_ok = out_ok && r.out[i] == a[i % a.size()];
            err_ok = err_ok && r.err[i] == b[i % b.size()];
        }
        BOOST_TEST(out_ok);
        BOOST_TEST(err_ok);
        BOOST_TEST(r.err_tail.size() == 20u);
    }, 120s);
}

BOOST_AUTO_TEST_CASE(timeout_terminates_then_kills_a_child_that_ignores_sigterm) {
    run_coroutine([&]() -> asio::awaitable<void> {
        auto polite = sh("exec sleep 30");
        polite.timeout = 100ms;
        auto r1 = co_await lp::run(std::move(polite));
        BOOST_TEST(r1.timed_out);
        BOOST_TEST(r1.signal == SIGTERM);
        BOOST_TEST(r1.describe() == "timed out");

        auto stubborn = sh("trap '' TERM; echo ready; while :; do sleep 1; done");
        stubborn.timeout = 100ms;
        stubborn.kill_grace = 200ms;
        stubborn.new_session = true; // SIGKILL then reaches the sleeps too
        auto ex = co_await asio::this_coro::executor;
        lp::child c(ex, std::move(stubborn));
        pid_t pid = c.pid();
        auto r2 = co_await c.wait();
        BOOST_TEST(r2.timed_out);
        BOOST_TEST(r2.signal == SIGKILL);
        BOOST_TEST(r2.out == "ready\n");
        BOOST_TEST(!proc_util::read_stat(pid).has_value());

        auto checked = sh("sleep 30");
        checked.timeout = 50ms;
        checked.new_session = true;
        try {
            co_await lp::run_checked(std::move(checked));
            BOOST_FAIL("no timeout");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::timeout);
            BOOST_TEST(std::string(e.what()).find("sh -c 'sleep 30' timed out after 50 ms") !=
                       std::string::npos, e.what());
        }
    }, 60s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(cancellation_by_a_racing_timer_ends_the_child) {
    run_coroutine([&]() -> asio::awaitable<void> {
        using namespace asio::experimental::awaitable_operators;
        auto ex = co_await asio::this_coro::executor;
        auto o = sh("trap '' TERM; exec sleep 30");
        o.kill_grace = 100ms;
        lp::child c(ex, std::move(o));
        pid_t pid = c.pid();
        asio::steady_timer t(ex, 100ms);
        auto r = co_await (c.wait() || t.async_wait(asio::use_awaitable));
        BOOST_TEST(r.index() == 1u);
        // wait() has completed (the group waits for it): the child is reaped.
        BOOST_TEST(!proc_util::read_stat(pid).has_value());
    }, 60s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(cancellation_through_a_slot_completes_with_operation_aborted) {
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        asio::cancellation_signal signal;
        std::optional<std::exception_ptr> outcome;
        pid_t pid = -1;
        asio::steady_timer done(ex, asio::steady_timer::time_point::max());
        auto body = [&]() -> asio::awaitable<void> {
            auto o = sh("echo started; exec sleep 30");
            o.out.mode = lp::stream_mode::sink;
            o.out.sink = [&](std::string_view) { signal.emit(asio::cancellation_type::terminal); };
            lp::child c(co_await asio::this_coro::executor, std::move(o));
            pid = c.pid();
            co_await c.wait();
        };
        asio::co_spawn(ex, body(), asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) {
                           outcome = e;
                           done.cancel();
                       }));
        co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
        BOOST_REQUIRE(outcome.has_value());
        BOOST_REQUIRE(*outcome);
        try {
            std::rethrow_exception(*outcome);
        } catch (const boost::system::system_error& e) {
            BOOST_TEST(e.code() == asio::error::operation_aborted);
        }
        BOOST_TEST(pid > 0);
        BOOST_TEST(!proc_util::read_stat(pid).has_value());
    }, 60s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(terminate_and_destructor_end_the_child) {
    pid_t destroyed = -1;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        lp::child c(ex, sh("exec sleep 30"));
        auto r = co_await c.terminate(5s);
        BOOST_TEST(r.signal == SIGTERM);
        BOOST_TEST(!r.timed_out);
        // wait() after the end returns the same result.
        auto again = co_await c.wait();
        BOOST_TEST(again.signal == SIGTERM);
        {
            lp::child d(ex, sh("exec sleep 30"));
            destroyed = d.pid();
            BOOST_TEST(proc_util::read_stat(destroyed).has_value());
        }
        BOOST_TEST(!proc_util::read_stat(destroyed).has_value());
    }, 60s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(clear_errors_for_programs_that_cannot_run) {
    temp_dir dir;
    auto plain = dir.path / "not-executable";
    std::ofstream(plain) << "#!/bin/sh\necho hi\n";
    fs::permissions(plain, fs::perms::owner_read | fs::perms::owner_write);
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto spawn = [&](std::vector<std::string> argv, fs::path cwd = {}) {
            lp::options o;
            o.argv = std::move(argv);
            o.working_directory = std::move(cwd);
            lp::child c(ex, std::move(o));
        };
        expect_error([&] { spawn({"localvm-no-such-program"}); }, errc::not_found,
                     {"localvm-no-such-program", "not found"});
        expect_error([&] { spawn({"/nonexistent/dir/prog", "arg"}); }, errc::not_found,
                     {"/nonexistent/dir/prog"});
        expect_error([&] { spawn({plain.string()}); }, errc::process_failed,
                     {plain.string(), "Permission denied"});
        expect_error([&] { spawn({}); }, errc::invalid_argument, {"empty"});
        expect_error([&] { spawn({"true"}, dir.path / "missing-dir"); }, errc::not_found,
                     {"missing-dir"});
        co_return;
    }, 30s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(sink_flushes_a_partial_last_line_and_capture_counts_drops) {
    run_coroutine([&]() -> asio::awaitable<void> {
        std::vector<std::string> got;
        auto o = sh("printf 'a\\n\\nb\\nlast'");
        o.out.mode = lp::stream_mode::sink;
        o.out.sink = [&](std::string_view l) { got.emplace_back(l); };
        auto r = co_await lp::run(std::move(o));
        BOOST_TEST(r.success());
        BOOST_TEST((got == std::vector<std::string>{"a", "", "b", "last"}));
        BOOST_TEST(r.out.empty());

        auto c = sh("head -c 1000 /dev/zero; printf 'x\\ny\\nz' >&2");
        c.out.capture_limit = 300;
        c.err.capture_limit = 2;
        auto r2 = co_await lp::run(std::move(c));
        BOOST_TEST(r2.out == std::string(300, '\0'));
        BOOST_TEST(r2.out_dropped == 700u);
        BOOST_TEST(r2.err == "x\n");
        BOOST_TEST(r2.err_dropped == 3u);
        // The tail sees every line, whatever the capture kept.
        BOOST_TEST((r2.err_tail == std::vector<std::string>{"x", "y", "z"}));

        auto n = sh("echo out; echo err >&2");
        n.out.mode = lp::stream_mode::null;
        n.err.mode = lp::stream_mode::null;
        auto r3 = co_await lp::run(std::move(n));
        BOOST_TEST(r3.success());
        BOOST_TEST(r3.out.empty());
        BOOST_TEST(r3.err_tail.empty());
    }, 30s);
}

BOOST_AUTO_TEST_CASE(a_throwing_sink_ends_the_child_and_its_exception_comes_out) {
    pid_t pid = -1;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto o = sh("echo bad; exec sleep 30");
        o.out.mode = lp::stream_mode::sink;
        o.out.sink = [](std::string_view l) { throw std::runtime_error("sink refused " + std::string(l)); };
        o.kill_grace = 100ms;
        lp::child c(ex, std::move(o));
        pid = c.pid();
        try {
            co_await c.wait();
            BOOST_FAIL("no throw");
        } catch (const std::runtime_error& e) {
            BOOST_TEST(std::string(e.what()) == "sink refused bad");
        }
        BOOST_TEST(!proc_util::read_stat(pid).has_value());
    }, 30s);
    check_no_zombies();
}

// With a timeout set, wait() races the child's I/O against a timer: the
// sink's exception must still win, not be turned into a timeout.
BOOST_AUTO_TEST_CASE(a_throwing_sink_wins_over_a_pending_timeout) {
    pid_t pid = -1;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto o = sh("echo bad; exec sleep 30");
        o.out.mode = lp::stream_mode::sink;
        o.out.sink = [](std::string_view l) { throw std::runtime_error("sink refused " + std::string(l)); };
        o.timeout = 10s;
        o.kill_grace = 100ms;
        lp::child c(ex, std::move(o));
        pid = c.pid();
        const auto begun = std::chrono::steady_clock::now();
        try {
            auto r = co_await c.wait();
            BOOST_FAIL("no throw; the child " << r.describe());
        } catch (const std::runtime_error& e) {
            BOOST_TEST(std::string(e.what()) == "sink refused bad");
        }
        // The sink's failure ended the wait, not the timeout.
        BOOST_TEST((std::chrono::steady_clock::now() - begun < 5s));
        BOOST_TEST(!proc_util::read_stat(pid).has_value());
    }, 30s);
    check_no_zombies();
}

// terminate() reads on during the grace period: a sink failing then is
// rethrown at once, not swallowed by the grace timer.
BOOST_AUTO_TEST_CASE(a_sink_throwing_during_terminate_comes_out) {
    pid_t pid = -1;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        // stdout goes to our own pipe, to learn when the trap is in place.
        int p[2];
        BOOST_REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
        asio::posix::stream_descriptor ready(ex, p[0]);
        auto o = sh("trap 'echo bye >&2; sleep 30' TERM; echo ready; while :; do sleep 0.01; done");
        o.out.mode = lp::stream_mode::inherit;
        o.out.inherit_fd = p[1];
        o.err.mode = lp::stream_mode::sink;
        o.err.sink = [](std::string_view l) { throw std::runtime_error("sink refused " + std::string(l)); };
        lp::child c(ex, std::move(o));
        ::close(p[1]);
        pid = c.pid();
        char buf[6];
        co_await asio::async_read(ready, asio::buffer(buf), asio::use_awaitable);
        const auto begun = std::chrono::steady_clock::now();
        try {
            auto r = co_await c.terminate(10s);
            BOOST_FAIL("no throw; the child " << r.describe());
        } catch (const std::runtime_error& e) {
            BOOST_TEST(std::string(e.what()) == "sink refused bye");
        }
        BOOST_TEST((std::chrono::steady_clock::now() - begun < 5s));
        BOOST_TEST(!proc_util::read_stat(pid).has_value());
    }, 30s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(environment_and_working_directory_are_applied) {
    temp_dir dir;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto o = sh("echo \"$LOCALVM_A|${LOCALVM_B-unset}|$HOME\"; pwd");
        o.env_overrides = {"LOCALVM_A=one two", "HOME=/elsewhere"};
        o.working_directory = dir.path;
        ::setenv("LOCALVM_B", "inherited", 1);
        auto r = co_await lp::run(o);
        BOOST_TEST(r.out == "one two|inherited|/elsewhere\n" + fs::canonical(dir.path).string() + "\n");

        o.env_overrides.push_back("LOCALVM_B"); // a bare name removes it
        auto r2 = co_await lp::run(o);
        BOOST_TEST(r2.out.substr(0, r2.out.find('\n')) == "one two|unset|/elsewhere");
        ::unsetenv("LOCALVM_B");

        lp::options e;
        e.argv = {"/usr/bin/env"};
        e.environment = std::vector<std::string>{"ONLY=this", "AND=that"};
        auto r3 = co_await lp::run(std::move(e));
        BOOST_TEST(r3.out == "ONLY=this\nAND=that\n");

        lp::options p; // PATH of the child's environment finds the program
        p.argv = {"env"};
        p.environment = std::vector<std::string>{"PATH=/nonexistent:/usr/bin"};
        auto r4 = co_await lp::run(std::move(p));
        BOOST_TEST(r4.out == "PATH=/nonexistent:/usr/bin\n");
    }, 30s);
}

BOOST_AUTO_TEST_CASE(stdin_data_is_written_then_closed) {
    run_coroutine([&]() -> asio::awaitable<void> {
        auto o = sh("cat; echo done");
        o.stdin_mode = lp::input_mode::data;
        o.input = "hello\nworld";
        auto r = co_await lp::run(std::move(o));
        BOOST_TEST(r.out == "hello\nworlddone\n");

        lp::options big;
        big.argv = {"cat"};
        big.stdin_mode = lp::input_mode::data;
        for (int i = 0; i < 200000; ++i)
            big.input += "line " + std::to_string(i) + "\n";
        const std::string expected = big.input;
        auto r2 = co_await lp::run(std::move(big));
        BOOST_TEST(r2.out == expected);

        // A child that never reads its stdin: no SIGPIPE for us, no hang.
        lp::options deaf;
        deaf.argv = {"true"};
        deaf.stdin_mode = lp::input_mode::data;
        deaf.input.assign(4u << 20, 'x');
        auto r3 = co_await lp::run(std::move(deaf));
        BOOST_TEST(r3.success());

        lp::options empty;
        empty.argv = {"cat"};
        empty.stdin_mode = lp::input_mode::data;
        auto r4 = co_await lp::run(std::move(empty));
        BOOST_TEST(r4.success());
        BOOST_TEST(r4.out.empty());
    }, 60s);
}

BOOST_AUTO_TEST_CASE(inherited_streams_can_be_given_fds) {
    // A terminal for an interactive program is given this way; pipes show
    // which fd each stream got. The fds stay open for the caller.
    temp_dir dir;
    auto in = dir.path / "in", out = dir.path / "out", err = dir.path / "err";
    std::ofstream(in) << "typed\n";
    int in_fd = ::open(in.c_str(), O_RDONLY | O_CLOEXEC);
    int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    BOOST_REQUIRE(in_fd >= 0);
    BOOST_REQUIRE(out_fd >= 0);
    BOOST_REQUIRE(err_fd >= 0);
    run_coroutine([&]() -> asio::awaitable<void> {
        auto o = sh("read x; echo \"got $x\"; echo oops >&2; exit 3");
        o.stdin_mode = lp::input_mode::inherit;
        o.stdin_fd = in_fd;
        o.out.mode = lp::stream_mode::inherit;
        o.out.inherit_fd = out_fd;
        o.err.mode = lp::stream_mode::inherit;
        o.err.inherit_fd = err_fd;
        auto r = co_await lp::run(std::move(o));
        BOOST_TEST(r.exit_code == 3);

        auto bad = sh("true");
        bad.stdin_mode = lp::input_mode::inherit;
        bad.stdin_fd = 987;
        try {
            co_await lp::run(std::move(bad));
            BOOST_FAIL("no throw");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
            BOOST_TEST(std::string(e.what()).find("fd 987 given as stdin") != std::string::npos,
                       e.what());
        }
    }, 30s);
    for (int fd : {in_fd, out_fd, err_fd})
        BOOST_TEST(::fcntl(fd, F_GETFD) >= 0, "fd " << fd << " was closed");
    ::close(in_fd);
    ::close(out_fd);
    ::close(err_fd);
    std::ifstream o(out), e(err);
    std::stringstream os, es;
    os << o.rdbuf();
    es << e.rdbuf();
    BOOST_TEST(os.str() == "got typed\n");
    BOOST_TEST(es.str() == "oops\n");
}

// With our own stdin closed, the pipes we create may take fd 0; each stream
// must still reach the child's right fd, and an inherited closed stdin
// becomes /dev/null in the child (not a closed fd its first open() takes).
BOOST_AUTO_TEST_CASE(our_closed_stdin_is_no_trap_for_the_child) {
    const int saved = ::fcntl(0, F_DUPFD_CLOEXEC, 3);
    ::close(0);
    lp::result piped, inherited;
    try {
        run_coroutine([&]() -> asio::awaitable<void> {
            auto o = sh("cat; echo err >&2");
            o.stdin_mode = lp::input_mode::data;
            o.input = "in\n";
            piped = co_await lp::run(std::move(o));
            auto i = sh("readlink /proc/self/fd/0");
            i.stdin_mode = lp::input_mode::inherit;
            inherited = co_await lp::run(std::move(i));
        }, 30s);
    } catch (...) {
        if (saved >= 0)
            ::dup2(saved, 0);
        throw;
    }
    if (saved >= 0) {
        ::dup2(saved, 0);
        ::close(saved);
    }
    BOOST_TEST(piped.out == "in\n");
    BOOST_TEST(piped.err == "err\n");
    BOOST_TEST(inherited.out == "/dev/null\n");
}

BOOST_AUTO_TEST_CASE(run_checked_names_command_status_and_stderr) {
    run_coroutine([&]() -> asio::awaitable<void> {
        try {
            co_await lp::run_checked(sh("echo first >&2; echo 'image locked' >&2; exit 1"));
            BOOST_FAIL("no throw");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::process_failed);
            std::string d = e.diagnostic();
            BOOST_TEST(d.find("sh -c 'echo first >&2; echo '\\''image locked'\\'' >&2; exit 1' "
                              "exited with status 1:") == 0u, d);
            BOOST_TEST(d.find("image locked") != std::string::npos, d);
            BOOST_TEST(d.find("first") != std::string::npos, d);
        }
        auto ok = co_await lp::run_checked(sh("echo fine"));
        BOOST_TEST(ok.out == "fine\n");
    }, 30s);
}

BOOST_AUTO_TEST_CASE(new_session_puts_the_child_in_its_own_session) {
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto o = sh("exec sleep 30");
        o.new_session = true;
        lp::child c(ex, std::move(o));
        auto st = proc_util::read_stat(c.pid());
        BOOST_REQUIRE(st);
        BOOST_TEST(st->session == c.pid());
        BOOST_TEST(st->session != ::getsid(0));
        auto r = co_await c.terminate(5s);
        BOOST_TEST(r.signal == SIGTERM);
    }, 30s);
}

BOOST_AUTO_TEST_CASE(no_fds_leak_across_many_runs) {
    temp_dir dir;
    const auto before = proc_util::count_own_fds();
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (int i = 0; i < 20; ++i) {
            auto o = sh("echo out; echo err >&2; cat");
            o.stdin_mode = lp::input_mode::data;
            o.input = "in";
            o.err.mode = i % 2 ? lp::stream_mode::sink : lp::stream_mode::null;
            o.err.sink = [](std::string_view) {};
            co_await lp::run(std::move(o));
            try {
                lp::options missing;
                missing.argv = {"localvm-no-such-program"};
                lp::child bad(ex, std::move(missing));
            } catch (const localvm::error&) {
            }
            auto t = sh("exec sleep 30");
            t.timeout = 10ms;
            co_await lp::run(std::move(t));
        }
        // The child sees only 0, 1, 2 of ours, even fds we opened without O_CLOEXEC.
        int leaky = ::open("/dev/null", O_RDONLY);
        auto r = co_await lp::run(sh("ls /proc/self/fd"));
        ::close(leaky);
        std::set<std::string> fds;
        std::istringstream lines(r.out);
        for (std::string l; std::getline(lines, l);)
            fds.insert(l);
        // ls's own directory fd is the one extra entry.
        BOOST_TEST(fds.size() == 4u, r.out);
        BOOST_TEST(fds.count("0") + fds.count("1") + fds.count("2") == 3u);
    }, 120s);
    BOOST_TEST(proc_util::count_own_fds() == before);
    check_no_zombies();
}

// A child borrows our memory until its exec (vfork), it does not get a
// copy-on-write image of it (fork): after a fork, our first write to each
// page of our memory takes a page fault. 64 MiB written after a child ran
// takes about none, where a fork made 16384 (one per 4 KiB page), and the
// fork itself cost in proportion to our memory (bench/process/bench_child_spawn).
BOOST_AUTO_TEST_CASE(starting_a_child_copies_none_of_the_starters_memory) {
    const std::size_t bytes = 64u << 20;
    std::vector<char> heap(bytes, 1); // resident, written
    auto faults = [] {
        rusage u{};
        ::getrusage(RUSAGE_SELF, &u);
        return u.ru_minflt;
    };
    auto write_all = [&](char v) {
        for (std::size_t i = 0; i < bytes; i += 4096)
            heap[i] = v;
    };
    write_all(2); // faulted in already: no faults from here on by itself
    const long quiet0 = faults();
    write_all(3);
    const long quiet = faults() - quiet0;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto r = co_await lp::run(sh("exit 0"));
        BOOST_TEST(r.success());
    }, 30s);
    const long after0 = faults();
    write_all(4);
    const long after = faults() - after0;
    const long pages = static_cast<long>(bytes / 4096);
    BOOST_TEST_MESSAGE("faults writing " << pages << " pages: " << quiet << " before, " << after
                                         << " after a child ran");
    BOOST_TEST(after < pages / 8, after << " of " << pages << " pages faulted: copied on write");
}

// Our signal state is ours: a handler we installed and signals we block
// stay as they were (every signal is blocked only while the child borrows
// our memory), and the child starts with none of it.
BOOST_AUTO_TEST_CASE(the_starters_signal_state_stays_and_the_child_has_the_defaults) {
    struct sigaction handler {}, old_usr1{};
    handler.sa_handler = [](int) {};
    ::sigemptyset(&handler.sa_mask);
    BOOST_REQUIRE(::sigaction(SIGUSR1, &handler, &old_usr1) == 0);
    sigset_t usr2, before, after;
    ::sigemptyset(&usr2);
    ::sigaddset(&usr2, SIGUSR2);
    BOOST_REQUIRE(::pthread_sigmask(SIG_BLOCK, &usr2, &before) == 0);
    std::string status;
    run_coroutine([&]() -> asio::awaitable<void> {
        // cat's own state, read by itself (sh execs it).
        auto r = co_await lp::run_checked(sh("exec cat /proc/self/status"));
        status = proc_util::lines_starting(r.out, {"SigBlk:", "SigIgn:", "SigCgt:"});
    }, 30s);
    BOOST_REQUIRE(::pthread_sigmask(SIG_SETMASK, &before, &after) == 0);
    BOOST_TEST(::sigismember(&after, SIGUSR2) == 1);
    BOOST_TEST(::sigismember(&after, SIGUSR1) == 0);
    struct sigaction now {};
    ::sigaction(SIGUSR1, &old_usr1, &now);
    BOOST_TEST((now.sa_handler == handler.sa_handler));
    BOOST_TEST(status == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
                         "SigCgt:\t0000000000000000\n");
}
