// The console log's drain: the rotation decision byte for byte, and the
// copy a detached process's supervisor makes of its FIFO (as QEMU feeds
// it), followed by console_log and read by read_tail across rotations.
#define BOOST_TEST_MODULE console_drain
#include <localvm/console/drain.hpp>
#include <localvm/console/log.hpp>
#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../../common/cancel.hpp"
#include "../../common/proc_util.hpp"
#include "common.hpp"
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using console_test::temp_dir;
using localvm::console::console_log;
using localvm::console::drain_fifo;
using localvm::console::read_tail;
using localvm::console::rotated_log;
using localvm::console::rotation_split;
using localvm::console::wait_drained;
namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lp = localvm::process;
using strings = std::vector<std::string>;

namespace {

// What QEMU does: opens the FIFO for writing and writes to it.
struct writer {
    int fd;
    explicit writer(const fs::path& fifo)
        : fd(::open(fifo.c_str(), O_WRONLY | O_CLOEXEC)) {
        BOOST_REQUIRE(fd >= 0);
    }
    void write(const std::string& s) {
        BOOST_REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
    }
    void close() {
        ::close(fd);
        fd = -1;
    }
    ~writer() {
        if (fd >= 0)
            ::close(fd);
    }
};

std::string numbered(int i) {
    return "line " + std::to_string(i) + " " + std::string(30, 'a' + i % 26);
}

// Reads until the follower has `want` lines (or reads `last`), waiting on
// its inotify watch: the supervisor is another process, copying in its own time.
asio::awaitable<strings> follow(console_log& log, std::size_t want,
                                const std::string& last = "\n") {
    strings got;
    for (;;) {
        for (auto& l : log.read_lines())
            got.push_back(std::move(l));
        if (got.size() >= want || (!got.empty() && got.back() == last))
            co_return got;
        co_await log.wait_change();
    }
}

// A program under a supervisor that drains `dir/console.log`.
struct drained {
    fs::path log;
    fs::path status;
    lp::detached_options options;
    drained(const temp_dir& dir, std::vector<std::string> argv) {
        log = dir / "console.log";
        status = dir / "status";
        options.argv = std::move(argv);
        options.exit_status_file = status;
        options.drain_log = log;
    }
};

// The supervisor of the program that `d` started: the process given its
// status file. Found by its arguments, not as the program's parent, so that
// it is found also when the program has already ended (and was reaped). Call
// while the program runs: the supervisor lives until it has recorded the
// program's end (before commit too, if the program ends first).
pid_t supervisor_of(const drained& d) {
    const auto found = proc_util::processes_with_args({"--status", d.status.string()});
    BOOST_REQUIRE_EQUAL(found.size(), 1u);
    return found.front();
}

// The supervisor's end: the program ended, its output copied, the FIFO
// gone, the end recorded. No polling: a pidfd.
void await_end(pid_t supervisor) {
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            BOOST_REQUIRE(co_await lp::wait_exit(supervisor, 10s));
        },
        30s);
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

} // namespace

BOOST_AUTO_TEST_CASE(rotation_split_keeps_files_under_the_limit) {
    // Fits: all of it.
    BOOST_TEST(rotation_split(0, 10, "abc\n") == 4u);
    BOOST_TEST(rotation_split(6, 10, "abc\n") == 4u);
    BOOST_TEST(rotation_split(0, 10, "") == 0u);
    // Does not fit: up to the last newline that fits...
    BOOST_TEST(rotation_split(5, 10, "ab\ncd\nefgh\n") == 3u);
    BOOST_TEST(rotation_split(0, 10, "0123\n5678\nabc") == 10u);
    // ... or rotate first, when no newline fits and the file holds something.
    BOOST_TEST(rotation_split(5, 10, "abcdefgh\n") == 0u);
    BOOST_TEST(rotation_split(10, 10, "x") == 0u);
    BOOST_TEST(rotation_split(12, 10, "x\n") == 0u);
    // An empty file takes a cut line: a line longer than the limit is split.
    BOOST_TEST(rotation_split(0, 4, "abcdefgh\n") == 4u);
    BOOST_TEST(rotation_split(0, 0, "ab") == 1u);
}

// Writers come and go while the program runs (the copy ends only with the
// program); the log rotates at its limit and a follower loses nothing.
BOOST_AUTO_TEST_CASE(the_supervisor_rotates_and_followers_lose_nothing) {
    temp_dir dir;
    drained d(dir, {"sleep", "600"});
    d.options.drain_rotate_bytes = 1000;
    console_test::append(d.log, "from an earlier run\n");
    console_test::append(rotated_log(d.log), "older still\n");
    auto proc = lp::spawn_detached(d.options);
    BOOST_REQUIRE(proc.commit());
    const pid_t super = supervisor_of(d);
    BOOST_TEST(fs::is_fifo(drain_fifo(d.log)));
    BOOST_TEST(fs::is_empty(d.log)); // fresh per run
    BOOST_TEST(!fs::exists(rotated_log(d.log)));
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            console_log early(d.log), late(d.log);
            BOOST_TEST(late.read_lines().empty()); // opens the run's first file
            strings early_got, wrote;
            int i = 0;
            auto write_lines = [&](writer& w, int n) {
                std::string chunk;
                for (int k = 0; k < n; ++k, ++i) {
                    wrote.push_back(numbered(i));
                    chunk += wrote.back() + "\n";
                }
                w.write(chunk);
            };
            // `early` keeps up; `late` reads only at the end, after many
            // rotations. Every fifth round is another writer's.
            std::optional<writer> w;
            for (int round = 0; round < 20; ++round) {
                if (round % 5 == 0)
                    w.emplace(drain_fifo(d.log));
                write_lines(*w, 7); // about 280 bytes
                if (round % 5 == 4)
                    w.reset(); // the writer goes; the copy goes on
                auto got = co_await follow(early, wrote.size() - early_got.size());
                early_got.insert(early_got.end(), got.begin(), got.end());
            }
            BOOST_TEST(early_got == wrote, "the follower that kept up lost or garbled lines");
            // A line longer than the room left is cut by the size limit and goes on
            // in the next file (the follower reads the rotated part, then the log).
            w.emplace(drain_fifo(d.log));
            std::string longer(1500, 'L');
            w->write(longer + "\n");
            wrote.push_back(longer);
            auto got = co_await follow(early, 1);
            BOOST_TEST(got == strings{longer},
                       got.size() << " lines: " << (got.empty() ? 0 : got[0].size()) << " "
                                  << (got.size() > 1 ? got[1].size() : 0));
            write_lines(*w, 3);
            w.reset();
            BOOST_TEST(fs::is_fifo(drain_fifo(d.log))); // the program runs: still there
            ::kill(proc.pid(), SIGTERM);
            BOOST_REQUIRE(co_await lp::wait_exit(super, 10s));
            BOOST_TEST(!fs::exists(drain_fifo(d.log))); // removed when done
            BOOST_TEST(fs::file_size(d.log) <= 1000u);
            BOOST_TEST(fs::file_size(rotated_log(d.log)) <= 1000u);
            got = co_await follow(early, 3);
            BOOST_TEST(got == strings(wrote.end() - 3, wrote.end()));
            // Far behind: it read its first file to the end, then what is left (the
            // rotated part and the current file); the files in between are gone.
            auto late_got = co_await follow(late, SIZE_MAX, wrote.back());
            BOOST_TEST(late_got.size() < wrote.size());
            BOOST_TEST(late_got.back() == wrote.back());
            BOOST_TEST(late_got.front() == wrote.front());
            // read_tail joins the rotated part and the log.
            auto tail = read_tail(d.log, 4);
            BOOST_TEST(tail == longer + "\n" + wrote[wrote.size() - 3] + "\n" +
                                   wrote[wrote.size() - 2] + "\n" + wrote.back());
        },
        30s);
    auto st = lp::read_exit_status(d.status);
    BOOST_REQUIRE(st);
    BOOST_TEST((st->how == "signaled" && st->number == SIGTERM && !st->abandoned));
}

BOOST_AUTO_TEST_CASE(read_tail_reaches_into_the_rotated_part) {
    temp_dir dir;
    auto log = dir / "console.log";
    console_test::append(rotated_log(log), "one\ntwo\nthr");
    console_test::append(log, "ee\nfour\n");
    BOOST_TEST(read_tail(log, 3) == "two\nthree\nfour");
    BOOST_TEST(read_tail(log, 10) == "one\ntwo\nthree\nfour");
    BOOST_TEST(read_tail(log, 1) == "four");
}

// The program itself is the writer, as QEMU is: it opens the FIFO at once
// (its reader exists before the program runs), writes more than the pipe
// holds (the supervisor copies while it runs) and exits. Once the end is
// recorded, all of it is in the log and the FIFO is gone. The program
// writes only once its supervisor is found and committed (it waits on a
// FIFO of its own, `gate`): a supervisor whose program ended before commit
// records that end and is gone.
BOOST_AUTO_TEST_CASE(the_last_output_is_in_the_log_before_the_end_is_recorded) {
    temp_dir dir;
    std::string expected;
    for (int i = 1; i <= 30000; ++i)
        expected += std::to_string(i) + "\n"; // 168 KiB: more than a pipe's 64
    const fs::path gate = dir / "gate";
    BOOST_REQUIRE(::mkfifo(gate.c_str(), 0600) == 0);
    for (int run = 0; run < 3; ++run) {
        drained d(dir, {"sh", "-c", "exec > \"$0\"; read -r go < \"$1\"; exec seq 1 30000",
                        drain_fifo(dir / "console.log").string(), gate.string()});
        auto proc = lp::spawn_detached(d.options);
        const pid_t super = supervisor_of(d);
        BOOST_REQUIRE(super > 1);
        BOOST_REQUIRE(proc.commit());
        writer(gate).write("go\n"); // opens when the program does: no lost wake-up
        await_end(super);
        auto st = lp::read_exit_status(d.status);
        BOOST_REQUIRE(st);
        BOOST_TEST((st->how == "exited" && st->number == 0), st->how << " " << st->number);
        BOOST_TEST(!fs::exists(drain_fifo(d.log)));
        const std::string got = slurp(d.log);
        BOOST_TEST(got.size() == expected.size());
        BOOST_TEST((got == expected), "run " << run);
    }

    // More than one read's worth waits in the pipe when the program ends
    // (the supervisor stopped meanwhile, the pipe enlarged): all of it is
    // copied before the end is recorded.
    drained d(dir, {"sleep", "600"});
    auto proc = lp::spawn_detached(d.options);
    proc.commit();
    const pid_t super = supervisor_of(d);
    BOOST_REQUIRE(::kill(super, SIGSTOP) == 0);
    std::string big;
    for (int i = 0; big.size() < 600 * 1024; ++i)
        big += numbered(i) + "\n";
    {
        writer w(drain_fifo(d.log));
        BOOST_REQUIRE(::fcntl(w.fd, F_SETPIPE_SZ, 1024 * 1024) >= 1024 * 1024);
        w.write(big);
    }
    ::kill(proc.pid(), SIGKILL);
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> { BOOST_REQUIRE(co_await lp::wait_exit(proc.pid(), 10s)); },
        30s);
    BOOST_REQUIRE(::kill(super, SIGCONT) == 0);
    await_end(super);
    const std::string got = slurp(d.log);
    BOOST_TEST(got.size() == big.size());
    BOOST_TEST((got == big));
}

// Uncommitted (a start that failed, or a starter that dropped its handle),
// the program is killed; the supervisor still copies what it wrote, then
// removes the FIFO. Twenty in a row, dropped right after spawning: none is
// left behind.
BOOST_AUTO_TEST_CASE(an_uncommitted_program_takes_its_fifo_along) {
    temp_dir dir;
    drained d(dir, {"sh", "-c", "echo first words > \"$0\"; exec sleep 600",
                    drain_fifo(dir / "console.log").string()});
    pid_t super = -1;
    {
        auto proc = lp::spawn_detached(d.options);
        super = supervisor_of(d);
        localvm::testing::run_coroutine(
            [&]() -> asio::awaitable<void> {
                console_log log(d.log); // its watch lives on this io_context
                auto got = co_await follow(log, 1);
                BOOST_TEST(got == strings{"first words"});
            },
            30s);
    } // dropped: abandoned
    await_end(super);
    BOOST_TEST(!fs::exists(drain_fifo(d.log)));
    BOOST_TEST(read_tail(d.log, 5) == "first words");
    auto st = lp::read_exit_status(d.status);
    BOOST_REQUIRE(st);
    BOOST_TEST(st->abandoned);

    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            for (int i = 0; i < 20; ++i) {
                {
                    auto dropped = co_await lp::launch_detached(d.options);
                }
                BOOST_TEST(co_await wait_drained(d.log, 5000ms));
                BOOST_TEST(!fs::exists(drain_fifo(d.log)));
            }
            // Cancelled at once, before the supervisor reported: its report
            // finds the pipe closed (EPIPE, not a SIGPIPE death that would
            // leave the program unwatched and the FIFO behind).
            for (int i = 0; i < 20; ++i) {
                co_await lvtest::ends_aborted_when_cancelled(lp::launch_detached(d.options), 0ms);
                const bool gone = co_await wait_drained(d.log, 5000ms);
                BOOST_TEST(gone, "cancelled launch " << i << ": the FIFO stays");
                if (!gone)
                    break;
            }
        },
        60s);
}

// A launch whose io_context goes while it waits to spawn (its one yield,
// after preparing): nothing was spawned, and its FIFO goes with it.
BOOST_AUTO_TEST_CASE(a_launch_ended_before_its_spawn_leaves_no_fifo) {
    temp_dir dir;
    drained d(dir, {"sleep", "600"});
    {
        asio::io_context ctx;
        asio::co_spawn(ctx, lp::launch_detached(d.options), asio::detached);
        BOOST_TEST(ctx.run_one() == 1u); // prepared, up to its yield
        BOOST_TEST(fs::is_fifo(drain_fifo(d.log)));
        BOOST_TEST(!ctx.stopped()); // the spawn is still to run
    } // the io_context goes, and the launch waiting in it
    BOOST_TEST(!fs::exists(drain_fifo(d.log)));
    BOOST_TEST(proc_util::processes_with_args({"--status", d.status.string()}).empty());
    BOOST_TEST(!fs::exists(d.status));
}

// A starter killed before commit (its QEMU dies with it): the supervisor
// kills the program, copies what it wrote and removes the FIFO.
BOOST_AUTO_TEST_CASE(a_starter_killed_before_commit_leaves_no_fifo) {
    temp_dir dir;
    drained d(dir, {"sh", "-c", "echo from the writer > \"$0\"; exec sleep 600",
                    drain_fifo(dir / "console.log").string()});
    int report[2];
    BOOST_REQUIRE(::pipe(report) == 0);
    pid_t starter = ::fork();
    BOOST_REQUIRE(starter >= 0);
    if (starter == 0) {
        ::close(report[0]);
        auto proc = lp::spawn_detached(d.options);
        const pid_t super = supervisor_of(d);
        if (::write(report[1], &super, sizeof super) != sizeof super)
            ::_exit(1);
        for (;;)
            ::pause(); // killed below: no destructor, no commit
    }
    ::close(report[1]);
    pid_t super = -1;
    BOOST_REQUIRE(::read(report[0], &super, sizeof super) == sizeof super);
    ::close(report[0]);
    BOOST_TEST(fs::is_fifo(drain_fifo(d.log)));
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            console_log log(d.log);
            auto got = co_await follow(log, 1);
            BOOST_TEST(got == strings{"from the writer"});
        },
        30s);
    ::kill(starter, SIGKILL);
    ::waitpid(starter, nullptr, 0);
    await_end(super);
    BOOST_TEST(!fs::exists(drain_fifo(d.log)));
    auto st = lp::read_exit_status(d.status);
    BOOST_REQUIRE(st);
    BOOST_TEST(st->abandoned);
    BOOST_TEST(read_tail(d.log, 5) == "from the writer");
}

BOOST_AUTO_TEST_CASE(wait_drained_waits_for_the_copy_to_end) {
    temp_dir dir;
    drained d(dir, {"sleep", "600"});
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            BOOST_TEST(co_await wait_drained(d.log, 10ms)); // no drain at all
            auto proc = lp::spawn_detached(d.options);
            proc.commit();
            {
                writer w(drain_fifo(d.log));
                w.write("x\n");
            }
            // The writer is gone, the program is not: the copy goes on.
            BOOST_TEST(!co_await wait_drained(d.log, 50ms));
            ::kill(proc.pid(), SIGKILL);
            BOOST_TEST(co_await wait_drained(d.log, 5000ms));
            BOOST_TEST(read_tail(d.log, 1) == "x");
        },
        20s);
}

// The FIFO and the log are the supervisor's: the program holds neither.
BOOST_AUTO_TEST_CASE(the_program_holds_none_of_the_drain_fds) {
    temp_dir dir;
    drained d(dir, {"sleep", "600"});
    auto proc = lp::spawn_detached(d.options);
    proc.commit();
    const pid_t super = supervisor_of(d);
    // Ends of the FIFO and logs that `pid` holds.
    auto held = [&](pid_t pid) {
        std::pair<int, int> n{0, 0};
        for (const auto& [fd, target] : proc_util::fd_targets(pid)) {
            n.first += fs::path(target) == drain_fifo(d.log);
            n.second += fs::path(target) == d.log;
        }
        return n;
    };
    BOOST_TEST((held(proc.pid()) == std::pair{0, 0}));
    BOOST_TEST((held(super) == std::pair{2, 1})); // both FIFO ends, the log
    ::kill(proc.pid(), SIGKILL);
    await_end(super);
}

// Bad input: each error names its problem, and nothing is left: no FIFO.
BOOST_AUTO_TEST_CASE(drain_errors_name_the_problem_and_leave_no_fifo) {
    temp_dir dir;
    auto expect = [&](lp::detached_options o, localvm::errc code, const std::string& named) {
        try {
            auto p = lp::spawn_detached(o);
            BOOST_FAIL("started: " << o.argv[0]);
        } catch (const localvm::error& e) {
            BOOST_TEST((e.code() == code), e.what());
            BOOST_TEST(std::string(e.what()).find(named) != std::string::npos, e.what());
        }
        if (!o.drain_log.empty())
            BOOST_TEST(!fs::exists(drain_fifo(o.drain_log)), o.drain_log);
    };
    drained d(dir, {"sleep", "600"});
    auto no_status = d.options;
    no_status.exit_status_file.clear();
    expect(no_status, localvm::errc::invalid_argument, "drain_log");
    auto no_dir = d.options;
    no_dir.drain_log = dir / "missing" / "console.log";
    expect(no_dir, localvm::errc::io_error, drain_fifo(no_dir.drain_log).string());
    auto no_program = d.options;
    no_program.argv = {(dir / "no-such-program").string()};
    expect(no_program, localvm::errc::not_found, "no-such-program");
    auto bad_output = d.options;
    bad_output.stdout_file = dir / "missing" / "out";
    expect(bad_output, localvm::errc::io_error, bad_output.stdout_file.string());

    // Without its helper program: named, and nothing made (no FIFO, no log).
    const char* was = std::getenv("LOCALVM_LIBEXECDIR");
    const std::string saved = was ? was : "";
    ::setenv("LOCALVM_LIBEXECDIR", dir.path.c_str(), 1);
    auto fresh = d.options;
    fresh.drain_log = dir / "fresh.log";
    expect(fresh, localvm::errc::not_found, (dir / "localvm-supervise").string());
    if (was)
        ::setenv("LOCALVM_LIBEXECDIR", saved.c_str(), 1);
    else
        ::unsetenv("LOCALVM_LIBEXECDIR");
    BOOST_TEST(!fs::exists(fresh.drain_log));
}
