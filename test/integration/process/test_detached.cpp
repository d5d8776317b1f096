// Detached processes: they outlive their starter, are nobody's zombie here,
// run in their own session with only 0, 1, 2 open, and their supervisor
// records how they ended. wait_exit wakes on a non-child's exit.
#define BOOST_TEST_MODULE process_detached
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/testing/run.hpp>

#include "../../common/proc_util.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace lp = localvm::process;
namespace fs = std::filesystem;
using localvm::errc;
using namespace std::chrono_literals;
using localvm::testing::run_coroutine;

namespace {

std::string helper_path() {
    auto& suite = boost::unit_test::framework::master_test_suite();
    for (int i = 1; i < suite.argc; ++i)
        if (std::string(suite.argv[i]).find("process_detach_helper") != std::string::npos)
            return suite.argv[i];
    BOOST_FAIL("pass the path of process_detach_helper after --");
    return {};
}

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string templ = (fs::temp_directory_path() / "localvm-detached-XXXXXX").string();
        path = ::mkdtemp(templ.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string comm(pid_t pid) {
    std::string c = proc_util::proc_file(pid, "comm");
    if (!c.empty() && c.back() == '\n')
        c.pop_back();
    return c;
}

// A program just exec'd by a detached launch: its stdio, 0 to 2, and no
// pipe or socket of ours (the report pipe, the commit channel). Not "only
// 0 to 2": the program's own start (the dynamic loader, setlocale) opens
// and closes files on 3 in the moment after its exec.
void check_holds_nothing_of_ours(pid_t pid) {
    const auto fds = proc_util::fd_targets(pid);
    BOOST_TEST((fds.size() >= 3 && fds.contains(0) && fds.contains(1) && fds.contains(2)));
    for (const auto& [fd, target] : fds)
        BOOST_TEST(!(target.starts_with("pipe:") || target.starts_with("socket:")),
                   "fd " << fd << ": " << target);
}

// The SigBlk and SigIgn lines of /proc/<pid>/status (signal masks in hex).
std::string masks(pid_t pid) {
    return proc_util::lines_starting(proc_util::proc_file(pid, "status"), {"SigBlk:", "SigIgn:"});
}

// Runs the helper (which exits at once) and returns the detached pid.
asio::awaitable<pid_t> start_via_helper(const std::string& status, const std::string& out,
                                        const std::string& err, std::vector<std::string> program) {
    lp::options o;
    o.argv = {helper_path(), status.empty() ? "-" : status, out.empty() ? "-" : out,
              err.empty() ? "-" : err, "--"};
    o.argv.insert(o.argv.end(), program.begin(), program.end());
    o.timeout = 30s; // the detached process must not hold the helper's stdout
    auto r = co_await lp::run_checked(std::move(o));
    co_return static_cast<pid_t>(std::stol(r.out));
}

void check_no_zombies() {
    auto z = proc_util::zombie_children();
    BOOST_TEST(z.empty(), "zombie children left: " << z.size());
}

} // namespace

BOOST_AUTO_TEST_CASE(outlives_its_starter_and_records_the_killing_signal) {
    temp_dir dir;
    const auto status = dir.path / "exit-status";
    run_coroutine([&]() -> asio::awaitable<void> {
        // (named, not braced in the co_await: GCC 12 miscompiles that)
        std::vector<std::string> program{"sleep", "30"};
        std::string none;
        pid_t pid = co_await start_via_helper(status.string(), none, none, program);
        BOOST_REQUIRE(pid > 0);
        BOOST_TEST(lp::alive(pid));
        auto st = proc_util::read_stat(pid);
        BOOST_REQUIRE(st);
        BOOST_TEST(st->state != 'Z');
        BOOST_TEST(st->ppid != ::getpid());
        BOOST_TEST(st->session != ::getsid(0));
        BOOST_TEST(comm(pid) == "sleep");
        // Its parent is the supervisor, also in the new session, holding nothing of ours.
        const pid_t super = st->ppid;
        BOOST_TEST(comm(super) == "localvm-superv");
        auto sst = proc_util::read_stat(super);
        BOOST_REQUIRE(sst);
        BOOST_TEST(sst->ppid != ::getpid());
        BOOST_TEST(sst->session == st->session);
        BOOST_TEST(sst->session == super); // it made the session (after leaving its starter)
        check_holds_nothing_of_ours(pid);
        // Until the supervisor reads the helper's commit (which the helper
        // does not wait for) it also holds its commit channel (a socket)
        // and the program's pidfd; nothing else.
        std::vector<int> super_fds;
        for (const auto& [fd, what] : proc_util::fd_targets(super)) {
            if (fd > 2 && (what.starts_with("socket:") || what == "anon_inode:[pidfd]"))
                continue;
            super_fds.push_back(fd);
        }
        BOOST_TEST((super_fds == std::vector<int>{0, 1, 2}));
        // The program keeps our working directory; the supervisor holds none.
        BOOST_TEST(fs::read_symlink("/proc/" + std::to_string(pid) + "/cwd") == fs::current_path());
        BOOST_TEST(fs::read_symlink("/proc/" + std::to_string(super) + "/cwd") == fs::path("/"));
        BOOST_TEST(!lp::read_exit_status(status).has_value());

        // Still running: wait_exit times out.
        bool exited1 = co_await lp::wait_exit(pid, 50ms);
        BOOST_TEST(!exited1);
        ::kill(pid, SIGTERM);
        bool exited2 = co_await lp::wait_exit(pid, 10s);
        BOOST_TEST(exited2);
        BOOST_TEST(!lp::alive(pid));
        bool exited3 = co_await lp::wait_exit(super, 10s);
        BOOST_TEST(exited3);
        auto es = lp::read_exit_status(status);
        BOOST_REQUIRE(es);
        BOOST_TEST(es->how == "signaled");
        BOOST_TEST(es->number == SIGTERM);
        BOOST_TEST(slurp(status) == "signaled 15\n");
        BOOST_TEST(!fs::exists(status.string() + ".tmp"));
    }, 60s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(records_the_exit_code_and_appends_output_to_files) {
    temp_dir dir;
    const auto status = dir.path / "exit-status";
    const auto fifo = dir.path / "go";
    const auto out = dir.path / "out.log", err = dir.path / "err.log";
    BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    std::ofstream(out) << "earlier\n";
    std::ofstream(status) << "exited 99\n"; // from an earlier run: must go
    run_coroutine([&]() -> asio::awaitable<void> {
        std::vector<std::string> program{
            "sh", "-c", "read x < '" + fifo.string() + "'; echo to-out; echo to-err >&2; exit 3"};
        pid_t pid = co_await start_via_helper(status.string(), out.string(), err.string(), program);
        auto st = proc_util::read_stat(pid);
        BOOST_REQUIRE(st);
        const pid_t super = st->ppid;
        BOOST_TEST(!fs::exists(status));
        BOOST_TEST(lp::alive(pid));
        {
            std::ofstream go(fifo); // blocks until sh opens the fifo for reading
            go << "go\n";
        }
        bool exited4 = co_await lp::wait_exit(pid, 10s);
        BOOST_TEST(exited4);
        bool exited5 = co_await lp::wait_exit(super, 10s);
        BOOST_TEST(exited5);
        auto es = lp::read_exit_status(status);
        BOOST_REQUIRE(es);
        BOOST_TEST(es->how == "exited");
        BOOST_TEST(es->number == 3);
        BOOST_TEST(slurp(out) == "earlier\nto-out\n");
        BOOST_TEST(slurp(err) == "to-err\n");
        struct stat sb {};
        BOOST_REQUIRE(::stat(err.c_str(), &sb) == 0);
        BOOST_TEST((sb.st_mode & 0777) == 0600u);
    }, 60s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(an_uncommitted_program_is_killed_when_its_handle_goes) {
    temp_dir dir;
    const auto status = dir.path / "exit-status";
    run_coroutine([&]() -> asio::awaitable<void> {
        lp::detached_options o;
        o.argv = {"sleep", "30"};
        o.exit_status_file = status;
        pid_t pid = -1, super = -1;
        {
            auto d = lp::spawn_detached(o);
            pid = d.pid();
            BOOST_TEST(d.pending());
            BOOST_TEST(lp::alive(pid));
            auto st = proc_util::read_stat(pid);
            BOOST_REQUIRE(st);
            super = st->ppid;
        } // dropped without commit()
        bool gone = co_await lp::wait_exit(pid, 10s);
        BOOST_TEST(gone);
        bool super_gone = co_await lp::wait_exit(super, 10s); // it writes the status, then exits
        BOOST_TEST(super_gone);
        auto es = lp::read_exit_status(status);
        BOOST_REQUIRE(es);
        BOOST_TEST(es->how == "signaled");
        BOOST_TEST(es->number == SIGKILL);
        BOOST_TEST(es->abandoned);
    }, 30s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(a_committed_program_outlives_its_handle) {
    temp_dir dir;
    const auto status = dir.path / "exit-status";
    run_coroutine([&]() -> asio::awaitable<void> {
        lp::detached_options o;
        o.argv = {"sleep", "30"};
        o.exit_status_file = status;
        pid_t pid = -1, super = -1;
        {
            auto d = lp::spawn_detached(o);
            pid = d.pid();
            auto st = proc_util::read_stat(pid);
            BOOST_REQUIRE(st);
            super = st->ppid;
            // Before the commit the supervisor also holds the commit channel.
            BOOST_TEST(proc_util::open_fds(super).size() > 3u);
            BOOST_TEST(d.commit());
            BOOST_TEST(!d.pending());
            BOOST_TEST(d.commit()); // idempotent
        }
        bool early = co_await lp::wait_exit(pid, 200ms);
        BOOST_TEST(!early);
        ::kill(pid, SIGTERM);
        bool gone = co_await lp::wait_exit(super, 10s);
        BOOST_TEST(gone);
        auto es = lp::read_exit_status(status);
        BOOST_REQUIRE(es);
        BOOST_TEST(es->number == SIGTERM);
        BOOST_TEST(!es->abandoned);
        BOOST_TEST(slurp(status) == "signaled 15\n");
    }, 30s);
    check_no_zombies();
}

// Runs process_detach_helper on `sleep 30` with DETACH_HELPER_DIE=`when`
// (it SIGKILLs itself before or right after its commit): the program's pid
// and its supervisor's.
asio::awaitable<std::pair<pid_t, pid_t>> start_and_die(const fs::path& status, std::string when) {
    lp::options o;
    o.argv = {helper_path(), status.string(), "-", "-", "--", "sleep", "30"};
    o.env_overrides = {"DETACH_HELPER_DIE=" + when};
    o.timeout = 30s;
    auto r = co_await lp::run(std::move(o));
    BOOST_TEST(r.signal == SIGKILL, r.describe());
    std::istringstream lines(r.out);
    pid_t pid = -1, super = -1;
    lines >> pid >> super;
    BOOST_REQUIRE(pid > 0);
    BOOST_REQUIRE(super > 0);
    co_return std::pair{pid, super};
}

BOOST_AUTO_TEST_CASE(a_starter_killed_before_commit_takes_its_program_along) {
    temp_dir dir;
    const auto status = dir.path / "exit-status";
    run_coroutine([&]() -> asio::awaitable<void> {
        auto [pid, super] = co_await start_and_die(status, "1");
        bool gone = co_await lp::wait_exit(pid, 10s);
        BOOST_TEST(gone);
        bool super_gone = co_await lp::wait_exit(super, 10s);
        BOOST_TEST(super_gone);
        auto es = lp::read_exit_status(status);
        BOOST_REQUIRE(es);
        BOOST_TEST(es->number == SIGKILL);
        BOOST_TEST(es->abandoned);
    }, 30s);
    check_no_zombies();
}

// commit() does not wait for the supervisor to read the byte: a starter
// that dies the instant after it still leaves its program running (the
// byte comes before the end of the channel that its death makes).
BOOST_AUTO_TEST_CASE(a_starter_killed_right_after_commit_leaves_the_program_running) {
    temp_dir dir;
    const auto status = dir.path / "exit-status";
    run_coroutine([&]() -> asio::awaitable<void> {
        auto [pid, super] = co_await start_and_die(status, "after-commit");
        BOOST_TEST(!co_await lp::wait_exit(pid, 300ms));
        ::kill(pid, SIGTERM);
        BOOST_TEST(co_await lp::wait_exit(super, 10s));
        auto es = lp::read_exit_status(status);
        BOOST_REQUIRE(es);
        BOOST_TEST(es->how == "signaled");
        BOOST_TEST(es->number == SIGTERM);
        BOOST_TEST(!es->abandoned);
    }, 30s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(a_program_that_ends_before_commit_is_recorded_as_it_ended) {
    temp_dir dir;
    const auto status = dir.path / "exit-status";
    run_coroutine([&]() -> asio::awaitable<void> {
        lp::detached_options o;
        const auto fifo = dir.path / "go";
        BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        o.argv = {"sh", "-c", "read x < '" + fifo.string() + "'; exit 3"};
        o.exit_status_file = status;
        auto d = lp::spawn_detached(o);
        auto st = proc_util::read_stat(d.pid());
        BOOST_REQUIRE(st);
        const pid_t super = st->ppid;
        std::ofstream(fifo) << "go\n";
        bool gone = co_await lp::wait_exit(d.pid(), 10s);
        BOOST_TEST(gone);
        // The supervisor does not wait for a commit of a program that ended.
        bool super_gone = co_await lp::wait_exit(super, 10s);
        BOOST_TEST(super_gone);
        auto es = lp::read_exit_status(status);
        BOOST_REQUIRE(es);
        BOOST_TEST(es->how == "exited");
        BOOST_TEST(es->number == 3);
        BOOST_TEST(!es->abandoned);
        d.commit(); // to a supervisor that is gone or going: harmless
    }, 30s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(in_process_spawn_without_supervisor_leaves_no_zombie) {
    run_coroutine([&]() -> asio::awaitable<void> {
        lp::detached_options o;
        o.argv = {"sleep", "30"};
        auto d = lp::spawn_detached(o);
        BOOST_TEST(!d.pending()); // no supervisor: committed from the start
        const pid_t pid = d.pid();
        auto st = proc_util::read_stat(pid);
        BOOST_REQUIRE(st);
        BOOST_TEST(st->ppid != ::getpid());
        BOOST_TEST(st->session == pid); // it leads a session of its own
        BOOST_TEST(comm(pid) == "sleep"); // the helper became the program
        check_holds_nothing_of_ours(pid);
        // Nothing ignored or blocked, glibc's internal signals (32, 33) included.
        BOOST_TEST(masks(pid) == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
        check_no_zombies(); // the intermediate process is reaped already
        ::kill(pid, SIGKILL);
        bool exited6 = co_await lp::wait_exit(pid, 10s);
        BOOST_TEST(exited6);
    }, 30s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(errors_name_the_problem) {
    temp_dir dir;
    auto plain = dir.path / "not-executable";
    std::ofstream(plain) << "#!/bin/sh\n";
    fs::permissions(plain, fs::perms::owner_read | fs::perms::owner_write);
    auto expect = [&](lp::detached_options o, errc code, const std::string& needle) {
        for (bool supervised : {false, true}) {
            o.exit_status_file = supervised ? dir.path / "status" : fs::path();
            try {
                auto unexpected = lp::spawn_detached(o);
                BOOST_FAIL("no error for " << needle);
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == code, e.what());
                BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, e.what());
            }
            // No status file for a program that never ran.
            BOOST_TEST(!fs::exists(dir.path / "status"));
        }
    };
    auto opts = [](std::vector<std::string> argv) {
        lp::detached_options o;
        o.argv = std::move(argv);
        return o;
    };
    expect(opts({"localvm-no-such-program"}), errc::not_found, "localvm-no-such-program");
    expect(opts({"/nonexistent/prog"}), errc::not_found, "/nonexistent/prog");
    expect(opts({plain.string()}), errc::process_failed, "Permission denied");
    expect(opts({}), errc::invalid_argument, "empty");
    auto bad_out = opts({"true"});
    bad_out.stdout_file = dir.path / "no-dir" / "out.log";
    expect(bad_out, errc::io_error, "no-dir/out.log");
    auto bad_cwd = opts({"true"});
    bad_cwd.working_directory = dir.path / "missing";
    expect(bad_cwd, errc::not_found, "missing");
    check_no_zombies();
}

// launch_detached: the same process as spawn_detached, the exec awaited on
// the io_context; hand_over commits without blocking the thread. Several
// launches overlap on one io_context.
BOOST_AUTO_TEST_CASE(launched_programs_overlap_and_are_handed_over) {
    temp_dir dir;
    run_coroutine([&]() -> asio::awaitable<void> {
        using namespace asio::experimental::awaitable_operators;
        auto launch = [&](int i) -> asio::awaitable<lp::detached_process> {
            lp::detached_options o;
            o.argv = {"sleep", "30"};
            o.exit_status_file = dir.path / ("status" + std::to_string(i));
            co_return co_await lp::launch_detached(o);
        };
        auto [a, b] = co_await (launch(0) && launch(1));
        pid_t supers[2];
        lp::detached_process* ds[2] = {&a, &b};
        for (int i = 0; i < 2; ++i) {
            BOOST_TEST(ds[i]->pending());
            auto st = proc_util::read_stat(ds[i]->pid());
            BOOST_REQUIRE(st);
            supers[i] = st->ppid;
            BOOST_TEST(co_await ds[i]->hand_over());
            BOOST_TEST(!ds[i]->pending());
            BOOST_TEST(co_await ds[i]->hand_over()); // idempotent
        }
        const pid_t pids[2] = {a.pid(), b.pid()};
        {
            auto drop_a = std::move(a); // committed: they live on
            auto drop_b = std::move(b);
        }
        for (int i = 0; i < 2; ++i) {
            BOOST_TEST(!co_await lp::wait_exit(pids[i], 100ms));
            ::kill(pids[i], SIGTERM);
            BOOST_TEST(co_await lp::wait_exit(supers[i], 10s));
            BOOST_TEST(slurp(dir.path / ("status" + std::to_string(i))) == "signaled 15\n");
        }
    }, 30s);
    check_no_zombies();
}

// A detached launch never forks this process: fork copies the caller's
// page tables (time in proportion to its size, twice per VM start before);
// the helper is spawned (posix_spawn runs no fork handlers) and forks
// itself, then supervises the program or, without a status file, becomes
// it. Counted with a fork handler, which fork() runs and posix_spawn does not.
std::atomic<int> forks_here{0};

BOOST_AUTO_TEST_CASE(a_detached_launch_does_not_fork_the_caller) {
    static bool registered = false;
    if (!registered) {
        ::pthread_atfork([] { ++forks_here; }, nullptr, nullptr);
        registered = true;
    }
    temp_dir dir;
    const int before = forks_here.load();
    pid_t pids[2] = {-1, -1};
    {
        lp::detached_options o;
        o.argv = {"sleep", "30"};
        o.exit_status_file = dir.path / "status0";
        auto d = lp::spawn_detached(o);
        pids[0] = d.pid();
        BOOST_TEST(d.commit());
    }
    run_coroutine([&]() -> asio::awaitable<void> {
        lp::detached_options o;
        o.argv = {"sleep", "30"};
        o.exit_status_file = dir.path / "status1";
        auto d = co_await lp::launch_detached(o);
        pids[1] = d.pid();
        BOOST_TEST(co_await d.hand_over());
    }, 30s);
    lp::detached_options unsupervised;
    unsupervised.argv = {"sleep", "30"};
    const pid_t lone = lp::spawn_detached(unsupervised).pid();
    BOOST_TEST(forks_here.load() == before);
    ::kill(lone, SIGKILL);
    pid_t supers[2];
    for (int i = 0; i < 2; ++i) {
        BOOST_REQUIRE(pids[i] > 0);
        auto st = proc_util::read_stat(pids[i]);
        BOOST_REQUIRE(st);
        supers[i] = st->ppid;
        BOOST_TEST(supers[i] != ::getpid()); // re-parented away, as before
        ::kill(pids[i], SIGTERM);
    }
    run_coroutine([&]() -> asio::awaitable<void> {
        for (int i = 0; i < 2; ++i) {
            BOOST_TEST(co_await lp::wait_exit(pids[i], 10s));
            // The supervisor records the end, then exits.
            BOOST_TEST(co_await lp::wait_exit(supers[i], 10s));
            BOOST_TEST(slurp(dir.path / ("status" + std::to_string(i))) == "signaled 15\n");
        }
    }, 30s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(a_launched_program_dropped_uncommitted_is_killed) {
    temp_dir dir;
    const auto status = dir.path / "exit-status";
    run_coroutine([&]() -> asio::awaitable<void> {
        lp::detached_options o;
        o.argv = {"sleep", "30"};
        o.exit_status_file = status;
        pid_t pid = -1, super = -1;
        {
            auto d = co_await lp::launch_detached(o);
            pid = d.pid();
            BOOST_TEST(lp::alive(pid));
            auto st = proc_util::read_stat(pid);
            BOOST_REQUIRE(st);
            super = st->ppid;
        }
        BOOST_TEST(co_await lp::wait_exit(pid, 10s));
        BOOST_TEST(co_await lp::wait_exit(super, 10s)); // it writes the status, then exits
        auto es = lp::read_exit_status(status);
        BOOST_REQUIRE(es);
        BOOST_TEST(es->abandoned);
    }, 30s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(launch_errors_name_the_problem) {
    temp_dir dir;
    run_coroutine([&]() -> asio::awaitable<void> {
        for (bool supervised : {false, true}) {
            lp::detached_options o;
            o.argv = {"localvm-no-such-program"};
            o.exit_status_file = supervised ? dir.path / "status" : fs::path();
            try {
                auto unexpected = co_await lp::launch_detached(o);
                BOOST_FAIL("no error");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == localvm::make_error_code(errc::not_found), e.what());
                BOOST_TEST(std::string(e.what()).find("localvm-no-such-program") !=
                           std::string::npos);
            }
            BOOST_TEST(!fs::exists(dir.path / "status"));
        }
    }, 30s);
    check_no_zombies();
}

BOOST_AUTO_TEST_CASE(wait_exit_is_cancellable) {
    run_coroutine([&]() -> asio::awaitable<void> {
        using namespace asio::experimental::awaitable_operators;
        auto ex = co_await asio::this_coro::executor;
        asio::steady_timer t(ex, 50ms);
        auto r = co_await (lp::wait_exit(::getpid(), 30s) || t.async_wait(asio::use_awaitable));
        BOOST_TEST(r.index() == 1u);
    }, 30s);
}

// lock_file: the program itself holds the lock (F_GETLK names its pid), as
// QEMU holds its -pidfile; a second start on a held lock is refused.
// hold_stdin: a program that reads stdin sees no end of file until it ends.
BOOST_AUTO_TEST_CASE(a_program_holds_its_lock_file_and_a_silent_stdin) {
    temp_dir dir;
    auto lock = dir.path / "prog.pid";
    auto owner = [&]() -> pid_t {
        int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return 0;
        struct flock fl {};
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        int rc = ::fcntl(fd, F_GETLK, &fl);
        ::close(fd);
        return rc == 0 && fl.l_type != F_UNLCK ? fl.l_pid : 0;
    };
    lp::detached_options o;
    o.argv = {"cat"}; // ends at end of file on stdin
    o.exit_status_file = dir.path / "status";
    o.lock_file = lock;
    o.hold_stdin = true;
    auto proc = lp::spawn_detached(o);
    BOOST_TEST(proc.commit());
    BOOST_TEST(owner() == proc.pid());
    BOOST_TEST(std::stol(slurp(lock)) == proc.pid());
    BOOST_TEST(comm(proc.pid()) == "cat");
    // Still running a moment later: cat reads a pipe nobody closes.
    run_coroutine([&]() -> asio::awaitable<void> {
        BOOST_TEST(!co_await lp::wait_exit(proc.pid(), 200ms));
        try {
            auto second = lp::spawn_detached(o);
            BOOST_FAIL("a second program took a held lock");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::already_running, e.what());
            BOOST_TEST(std::string(e.what()).find("prog.pid") != std::string::npos, e.what());
        }
        ::kill(proc.pid(), SIGTERM);
        BOOST_TEST(co_await lp::wait_exit(proc.pid(), 10s));
    });
    BOOST_TEST(owner() == 0);
    auto no_supervisor = o;
    no_supervisor.exit_status_file.clear();
    BOOST_CHECK_THROW(auto p = lp::spawn_detached(no_supervisor), localvm::error);
    check_no_zombies();
}

namespace {

// Private_Clean + Private_Dirty of /proc/<pid>/smaps_rollup, in KiB.
long private_kib(pid_t pid) {
    std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/smaps_rollup"));
    std::string line;
    long sum = 0;
    while (std::getline(in, line))
        if (line.rfind("Private_", 0) == 0)
            sum += std::stol(line.substr(line.find(':') + 1));
    return sum;
}

} // namespace

// The supervisor is localvm's helper program, exec'd: it holds none of its
// starter's memory, however big the starter is, even after the starter frees
// it (a fork would keep a copy-on-write image of it for the program's life).
BOOST_AUTO_TEST_CASE(the_supervisor_holds_none_of_a_big_starters_memory) {
    temp_dir dir;
    constexpr std::size_t heap_mib = 256;
    std::vector<char> heap(heap_mib << 20, 'x'); // touched: the starter really holds it
    lp::detached_options o;
    o.argv = {"sleep", "30"};
    o.exit_status_file = dir.path / "status";
    auto proc = lp::spawn_detached(o);
    BOOST_TEST(proc.commit());
    auto st = proc_util::read_stat(proc.pid());
    BOOST_REQUIRE(st);
    const pid_t super = st->ppid;
    BOOST_TEST(fs::read_symlink("/proc/" + std::to_string(super) + "/exe").filename() ==
               "localvm-supervise");
    BOOST_TEST(comm(super) == "localvm-superv");
    // Tens of MiB at most (a sanitizer build's runtime included); the
    // starter's heap alone is 256 MiB.
    const long held = private_kib(super);
    BOOST_TEST_MESSAGE("supervisor private memory: " << held << " KiB, starter heap "
                                                     << heap_mib << " MiB");
    BOOST_TEST(held > 0);
    BOOST_TEST(held < 32 * 1024);
    heap.clear();
    heap.shrink_to_fit();
    BOOST_TEST(private_kib(super) < 32 * 1024);
    run_coroutine([&]() -> asio::awaitable<void> {
        ::kill(proc.pid(), SIGTERM);
        BOOST_TEST(co_await lp::wait_exit(super, 10s));
    });
    auto es = lp::read_exit_status(o.exit_status_file);
    BOOST_REQUIRE(es);
    BOOST_TEST(es->how == "signaled");
    check_no_zombies();
}

// Without its helper program the library says which file it looked for and
// how to point it elsewhere, and starts nothing.
BOOST_AUTO_TEST_CASE(a_missing_supervisor_helper_is_named) {
    temp_dir dir;
    const char* was = std::getenv("LOCALVM_LIBEXECDIR");
    const std::string saved = was ? was : "";
    ::setenv("LOCALVM_LIBEXECDIR", dir.path.c_str(), 1);
    lp::detached_options o;
    o.argv = {"sleep", "30"};
    o.exit_status_file = dir.path / "status";
    try {
        auto p = lp::spawn_detached(o);
        BOOST_FAIL("started without its supervisor helper");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == errc::not_found, e.what());
        const std::string what = e.what();
        BOOST_TEST(what.find((dir.path / "localvm-supervise").string()) != std::string::npos, what);
        BOOST_TEST(what.find("LOCALVM_LIBEXECDIR") != std::string::npos, what);
    }
    if (was)
        ::setenv("LOCALVM_LIBEXECDIR", saved.c_str(), 1);
    else
        ::unsetenv("LOCALVM_LIBEXECDIR");
    BOOST_TEST(!fs::exists(o.exit_status_file));
    check_no_zombies();
}

// The helper run by hand with a bad command line says what is wrong and
// starts nothing (exit 2): a drained log needs all four of its options,
// and fds 5 to 7 (which the library passes).
BOOST_AUTO_TEST_CASE(the_supervisor_helper_refuses_a_bad_command_line) {
    temp_dir dir;
    const char* libexec = std::getenv("LOCALVM_LIBEXECDIR");
    BOOST_REQUIRE(libexec);
    const std::string helper = (fs::path(libexec) / "localvm-supervise").string();
    const std::string status = (dir.path / "status").string();
    const std::string log = (dir.path / "log").string();
    struct bad {
        std::vector<std::string> args;
        std::string says;
    };
    const std::vector<bad> cases = {
        {{"--", "/bin/true", "true"}, "needs --status"},
        {{"--status", status, "--drain-log", log, "--", "/bin/true", "true"},
         "--drain-log needs --drain-rotated, --drain-fifo and --drain-limit"},
        {{"--status", status, "--drain-limit", "0", "--", "/bin/true", "true"},
         "--drain-limit: a number of bytes, at least 1"},
        {{"--status", status, "--bogus", "x", "--", "/bin/true", "true"}, "unknown option"},
        {{"--detach", "--status", status, "--", "/bin/true", "true"},
         "--detach takes no --status, --hold-stdin or --drain-*"},
        {{"--detach", "--hold-stdin", "--", "/bin/true", "true"}, "--detach takes no"},
        {{"--detach", "--"}, "needs, after --, the program's path and argv"},
        {{"--detach", "--", "/bin/true", "true"}, "fd 3 is not open"},
    };
    run_coroutine([&]() -> asio::awaitable<void> {
        for (const auto& c : cases) {
            lp::options o;
            o.argv = {helper};
            o.argv.insert(o.argv.end(), c.args.begin(), c.args.end());
            o.timeout = 30s;
            auto r = co_await lp::run(std::move(o));
            BOOST_TEST(r.exit_code == 2, r.describe());
            BOOST_TEST(r.err.find(c.says) != std::string::npos, r.err);
        }
    });
    BOOST_TEST(!fs::exists(status));
    BOOST_TEST(fs::is_empty(dir.path));
    check_no_zombies();
}

// The supervisor resets every signal it inherited and ignores SIGPIPE for
// itself; its program gets default dispositions and an empty mask, also
// when the starter ignores and blocks signals (as servers do).
BOOST_AUTO_TEST_CASE(a_supervised_program_starts_with_default_signals) {
    temp_dir dir;
    struct sigaction ignore {}, old_pipe {}, old_hup {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old_pipe);
    ::sigaction(SIGHUP, &ignore, &old_hup);
    sigset_t block, old_mask;
    ::sigemptyset(&block);
    ::sigaddset(&block, SIGTERM);
    ::sigaddset(&block, SIGUSR1);
    ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
    std::string program, supervisor;
    {
        lp::detached_options o;
        o.argv = {"sleep", "30"};
        o.exit_status_file = dir.path / "exit-status";
        auto d = lp::spawn_detached(o);
        program = masks(d.pid());
        auto st = proc_util::read_stat(d.pid());
        BOOST_REQUIRE(st);
        supervisor = masks(st->ppid);
        // dropped uncommitted: the supervisor kills it
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    ::sigaction(SIGPIPE, &old_pipe, nullptr);
    ::sigaction(SIGHUP, &old_hup, nullptr);
    // Also glibc's two internal signals (32, 33), which its posix_spawn
    // leaves ignored.
    BOOST_TEST(program == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    // The supervisor ignores SIGPIPE (bit 13) alone.
    BOOST_TEST(supervisor == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\n");
}
