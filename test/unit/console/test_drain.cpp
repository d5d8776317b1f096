// The console log's drainer: the rotation decision byte for byte, and the
// drainer process fed through its FIFO as QEMU feeds it, followed by
// console_log and read by read_tail across rotations.
#define BOOST_TEST_MODULE console_drain
#include <localvm/console/drain.hpp>
#include <localvm/console/log.hpp>
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../../common/cancel.hpp"
#include "common.hpp"
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

using namespace std::chrono_literals;
using console_test::temp_dir;
using localvm::console::console_log;
using localvm::console::drain_fifo;
using localvm::console::drain_options;
using localvm::console::log_drainer;
using localvm::console::read_tail;
using localvm::console::rotated_log;
using localvm::console::rotation_split;
using localvm::console::wait_drained;
namespace asio = boost::asio;
namespace fs = std::filesystem;
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
// its inotify watch: the drainer is another process, copying in its own time.
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

bool exited(pid_t pid, int ms) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0)
        return true;
    pollfd p{fd, POLLIN, 0};
    bool done = ::poll(&p, 1, ms) > 0;
    ::close(fd);
    return done;
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

BOOST_AUTO_TEST_CASE(the_drainer_rotates_and_followers_lose_nothing) {
    temp_dir dir;
    auto log = dir / "console.log";
    console_test::append(log, "from an earlier run\n");
    console_test::append(rotated_log(log), "older still\n");
    drain_options o;
    o.rotate_bytes = 1000;
    auto d = log_drainer::start(log, o);
    BOOST_TEST(d.fifo() == drain_fifo(log));
    BOOST_TEST(fs::is_empty(log)); // fresh per run
    BOOST_TEST(!fs::exists(rotated_log(log)));
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            console_log early(log), late(log);
            BOOST_TEST(late.read_lines().empty()); // opens the run's first file
            writer w(d.fifo());
            strings early_got, wrote;
            int i = 0;
            auto write_lines = [&](int n) {
                std::string chunk;
                for (int k = 0; k < n; ++k, ++i) {
                    wrote.push_back(numbered(i));
                    chunk += wrote.back() + "\n";
                }
                w.write(chunk);
            };
            // `early` keeps up; `late` reads only at the end, after many rotations.
            for (int round = 0; round < 20; ++round) {
                write_lines(7); // about 280 bytes
                auto got = co_await follow(early, wrote.size() - early_got.size());
                early_got.insert(early_got.end(), got.begin(), got.end());
            }
            BOOST_TEST(early_got == wrote, "the follower that kept up lost or garbled lines");
            // A line longer than the room left is cut by the size limit and goes on
            // in the next file (the follower reads the rotated part, then the log).
            std::string longer(1500, 'L');
            w.write(longer + "\n");
            wrote.push_back(longer);
            auto got = co_await follow(early, 1);
            BOOST_TEST(got == strings{longer},
                       got.size() << " lines: " << (got.empty() ? 0 : got[0].size()) << " "
                                  << (got.size() > 1 ? got[1].size() : 0));
            write_lines(3);
            w.close();
            BOOST_REQUIRE(exited(d.pid(), 5000));
            BOOST_TEST(!fs::exists(d.fifo())); // it removes its FIFO when done
            BOOST_TEST(fs::file_size(log) <= 1000u);
            BOOST_TEST(fs::file_size(rotated_log(log)) <= 1000u);
            got = co_await follow(early, 3);
            BOOST_TEST(got == strings(wrote.end() - 3, wrote.end()));
            // Far behind: it read its first file to the end, then what is left (the
            // rotated part and the current file); the files in between are gone.
            auto late_got = co_await follow(late, SIZE_MAX, wrote.back());
            BOOST_TEST(late_got.size() < wrote.size());
            BOOST_TEST(late_got.back() == wrote.back());
            BOOST_TEST(late_got.front() == wrote.front());
            // read_tail joins the rotated part and the log.
            auto tail = read_tail(log, 4);
            BOOST_TEST(tail == longer + "\n" + wrote[wrote.size() - 3] + "\n" +
                                   wrote[wrote.size() - 2] + "\n" + wrote.back());
            d.release();
        },
        30s);
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

BOOST_AUTO_TEST_CASE(a_drainer_whose_writer_never_comes_ends) {
    temp_dir dir;
    auto log = dir / "console.log";
    pid_t pid;
    {
        auto d = log_drainer::start(log);
        pid = d.pid();
        BOOST_TEST(!exited(pid, 50));
    } // dropped without release: QEMU did not start
    BOOST_TEST(exited(pid, 5000));
    BOOST_TEST(!fs::exists(drain_fifo(log)));

    // finish(): the writer came and went; it copies the rest and ends.
    auto d = log_drainer::start(log);
    pid = d.pid();
    {
        writer w(d.fifo());
        w.write("last words\n");
    }
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> { co_await d.finish(2000ms); }, 30s);
    BOOST_TEST(exited(pid, 0));
    BOOST_TEST(read_tail(log, 5) == "last words");

    // Its connect timeout, when nobody tells it.
    drain_options o;
    o.connect_timeout = 100ms;
    auto lone = log_drainer::start(log, o);
    BOOST_TEST(exited(lone.pid(), 5000));
    lone.release();
}

// begin(): the FIFO has its reader when begin returns, so the writer (QEMU)
// may open it and write before the drainer said its pid; nothing is lost.
// A pending drainer dropped before started() ends by itself.
BOOST_AUTO_TEST_CASE(a_writer_may_come_between_begin_and_started) {
    temp_dir dir;
    auto log = dir / "console.log";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto pending = log_drainer::begin(log);
            BOOST_TEST(fs::is_fifo(drain_fifo(log)));
            writer w(drain_fifo(log)); // does not block: the reader exists
            w.write("early words\n");
            auto d = co_await pending.started();
            BOOST_TEST(d.pid() > 0);
            const pid_t pid = d.pid();
            d.release();
            w.write("later words\n");
            w.close();
            BOOST_TEST(exited(pid, 5000));
            BOOST_TEST(read_tail(log, 5) == "early words\nlater words");
            BOOST_TEST(!fs::exists(drain_fifo(log)));

            // Dropped before started(): it ends and removes its FIFO, also
            // when its pid report finds the pipe closed (no SIGPIPE death).
            for (int i = 0; i < 20; ++i) {
                { auto dropped = log_drainer::begin(log); }
                BOOST_TEST(co_await wait_drained(log, 5000ms));
                BOOST_TEST(!fs::exists(drain_fifo(log)));
            }
        },
        30s);
}

// finish() waits on the io_context, not in a blocking poll: a drainer that
// cannot end by itself (stopped) is killed after the grace, and other work
// runs meanwhile; cancelled, it kills the drainer at once.
BOOST_AUTO_TEST_CASE(finish_waits_on_the_io_context_and_kills_a_stuck_drainer) {
    temp_dir dir;
    auto log = dir / "console.log";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto d = log_drainer::start(log);
            const pid_t pid = d.pid();
            BOOST_REQUIRE(::kill(pid, SIGSTOP) == 0); // it cannot copy nor exit
            // Shared with the tick handler: one that fired just before the
            // cancel still runs after this coroutine's frame is gone.
            struct ticking {
                int ticks = 0;
                bool on = true;
            };
            auto t = std::make_shared<ticking>();
            asio::steady_timer tick(ex);
            std::function<void()> arm = [&] {
                tick.expires_after(5ms);
                tick.async_wait([&, t](boost::system::error_code ec) {
                    if (!ec && t->on) { // on: this frame (arm, tick) is alive
                        ++t->ticks;
                        arm();
                    }
                });
            };
            arm();
            co_await d.finish(200ms);
            t->on = false;
            tick.cancel();
            BOOST_TEST(exited(pid, 0)); // killed after the grace
            BOOST_TEST(t->ticks >= 2);  // the io_context ran while finish waited
            co_await d.finish(200ms);   // a second call does nothing
        },
        30s);

    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto d = log_drainer::start(log);
            const pid_t pid = d.pid();
            BOOST_REQUIRE(::kill(pid, SIGSTOP) == 0);
            BOOST_TEST(co_await lvtest::ends_aborted_when_cancelled(d.finish(60s)));
            BOOST_TEST(exited(pid, 5000)); // killed, not left stopped
        },
        30s);
}

// A starter killed before release (its QEMU dies with it, uncommitted):
// the drainer does not wait out its connect timeout for a writer, nor keep
// serving one that is about to go.
BOOST_AUTO_TEST_CASE(a_drainer_whose_starter_dies_unreleased_ends) {
    temp_dir dir;
    auto log = dir / "console.log";
    for (bool writer_came : {false, true}) {
        int report[2];
        BOOST_REQUIRE(::pipe(report) == 0);
        pid_t starter = ::fork();
        BOOST_REQUIRE(starter >= 0);
        if (starter == 0) {
            ::close(report[0]);
            auto d = log_drainer::start(log);
            pid_t pids[2] = {d.pid(), 0};
            if (writer_came) {
                // The QEMU stand-in: holds the FIFO's write end and lives on.
                pids[1] = ::fork();
                if (pids[1] == 0) {
                    ::close_range(3, ~0U, 0); // as QEMU, exec'd: none of its starter's fds
                    writer w(d.fifo());
                    for (;;)
                        ::pause();
                }
            }
            if (::write(report[1], pids, sizeof pids) != sizeof pids)
                ::_exit(1);
            for (;;)
                ::pause(); // killed below: no destructor, no release
        }
        ::close(report[1]);
        pid_t pids[2] = {-1, -1};
        BOOST_REQUIRE(::read(report[0], pids, sizeof pids) == sizeof pids);
        ::close(report[0]);
        ::kill(starter, SIGKILL);
        ::waitpid(starter, nullptr, 0);
        const pid_t drainer = pids[0];
        BOOST_TEST(exited(drainer, 10000), "writer came: " << writer_came);
        if (pids[1] > 0)
            ::kill(pids[1], SIGKILL);
    }
}

BOOST_AUTO_TEST_CASE(wait_drained_waits_for_the_drainer_to_finish) {
    temp_dir dir;
    auto log = dir / "console.log";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            BOOST_TEST(co_await wait_drained(log, 10ms)); // no drainer at all
            auto d = log_drainer::start(log);
            writer w(d.fifo());
            w.write("x\n");
            BOOST_TEST(!co_await wait_drained(log, 50ms)); // its writer is still there
            w.close();
            BOOST_TEST(co_await wait_drained(log, 5000ms));
            BOOST_TEST(read_tail(log, 1) == "x");
            d.release();
        },
        20s);
}

// The drainer is localvm's helper program, exec'd: it holds none of its
// starter's memory, however big the starter is, even after the starter freed
// it (a fork would keep a copy-on-write image of it while the VM runs); it
// holds only its own descriptors.
BOOST_AUTO_TEST_CASE(the_drainer_holds_none_of_a_big_starters_memory) {
    temp_dir dir;
    auto log = dir / "console.log";
    std::vector<char> heap(std::size_t{256} << 20, 'x'); // touched: really held
    auto d = log_drainer::start(log);
    const std::string proc = "/proc/" + std::to_string(d.pid());
    BOOST_TEST(fs::read_symlink(proc + "/exe").filename() == "localvm-console");
    BOOST_TEST(fs::read_symlink(proc + "/cwd") == fs::path("/"));
    auto private_kib = [&] {
        std::ifstream in(proc + "/smaps_rollup");
        std::string line;
        long sum = 0;
        while (std::getline(in, line))
            if (line.rfind("Private_", 0) == 0)
                sum += std::stol(line.substr(line.find(':') + 1));
        return sum;
    };
    heap.clear();
    heap.shrink_to_fit();
    const long held = private_kib();
    BOOST_TEST(held > 0);
    BOOST_TEST(held < 32 * 1024, "drainer private memory " << held << " KiB");
    {
        writer w(d.fifo());
        w.write("hello\n");
    }
    d.release();
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> { BOOST_TEST(co_await wait_drained(log, 10s)); }, 30s);
    BOOST_TEST(read_tail(log, 1) == "hello");
}

// Without its helper program, start says which file it looked for and makes
// nothing: no FIFO, no log.
BOOST_AUTO_TEST_CASE(a_missing_drainer_helper_is_named) {
    temp_dir dir;
    auto log = dir / "console.log";
    const char* was = std::getenv("LOCALVM_LIBEXECDIR");
    const std::string saved = was ? was : "";
    ::setenv("LOCALVM_LIBEXECDIR", dir.path.c_str(), 1);
    try {
        auto d = log_drainer::start(log);
        BOOST_FAIL("started without its helper");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == localvm::errc::not_found, e.what());
        BOOST_TEST(std::string(e.what()).find((dir / "localvm-console").string()) !=
                       std::string::npos,
                   e.what());
    }
    if (was)
        ::setenv("LOCALVM_LIBEXECDIR", saved.c_str(), 1);
    else
        ::unsetenv("LOCALVM_LIBEXECDIR");
    BOOST_TEST(!fs::exists(drain_fifo(log)));
    BOOST_TEST(!fs::exists(log));
}

// launch(): the drainer started without blocking the thread and without a
// fork of this process (fork copies the caller's page tables; posix_spawn
// runs no fork handlers, fork does), re-parented away (not our child), and
// working as start()'s: it copies its writer's output and ends with it.
namespace {
std::atomic<int> forks_here{0};
}

BOOST_AUTO_TEST_CASE(launch_forks_nothing_here_and_drains_as_start_does) {
    ::pthread_atfork([] { ++forks_here; }, nullptr, nullptr);
    temp_dir dir;
    auto log = dir / "console.log";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto d = co_await log_drainer::launch(log);
            const pid_t pid = d.pid();
            BOOST_TEST(forks_here.load() == 0);
            BOOST_TEST(pid > 0);
            BOOST_TEST(::waitpid(pid, nullptr, WNOHANG) < 0); // not our child
            {
                writer w(d.fifo());
                w.write("from launch\n");
            }
            co_await d.finish(2000ms);
            BOOST_TEST(exited(pid, 0));
            BOOST_TEST(read_tail(log, 5) == "from launch");
        },
        30s);
    // start() forks nothing here either.
    auto s = log_drainer::start(log);
    BOOST_TEST(forks_here.load() == 0);
    const pid_t pid = s.pid();
    BOOST_TEST(!exited(pid, 0));
    { writer w(s.fifo()); } // a writer came and went: it ends
    s.release();
    BOOST_TEST(exited(pid, 5000));
}
