// sys::pidfd_* (src/sys/pidfd.hpp) against real children: running, exited
// but not reaped (a zombie), reaped; the awaitable wait with its deadline
// and cancellation.
#define BOOST_TEST_MODULE sys_pidfd
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>
#include <localvm/wait.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>

#include "../../common/cancel.hpp"
#include "sys/pidfd.hpp"
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
using localvm::sys::pidfd_exited;
using localvm::sys::pidfd_open;
using localvm::sys::pidfd_send_signal;
using localvm::sys::pidfd_wait;
using localvm::testing::run_coroutine;
using namespace std::chrono_literals;

namespace {

// A child that waits for a signal; killed (and reaped) by the destructor
// unless the test reaped it.
struct child {
    pid_t pid = -1;
    child() {
        pid = ::fork();
        BOOST_REQUIRE(pid >= 0);
        if (pid == 0) {
            for (;;)
                ::pause();
        }
    }
    explicit child(int exit_code) {
        pid = ::fork();
        BOOST_REQUIRE(pid >= 0);
        if (pid == 0)
            ::_exit(exit_code);
    }
    int reap() {
        int st = 0;
        while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        pid = -1;
        return st;
    }
    ~child() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            reap();
        }
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(invalid_pids) {
    errno = 0;
    BOOST_TEST(!pidfd_open(0));
    BOOST_TEST(errno == EINVAL);
    errno = 0;
    BOOST_TEST(!pidfd_open(-5));
    BOOST_TEST(errno == EINVAL);
}

BOOST_AUTO_TEST_CASE(a_running_child_is_signalled_and_awaited) {
    run_coroutine([]() -> asio::awaitable<void> {
        child c;
        auto fd = pidfd_open(c.pid);
        BOOST_REQUIRE(fd);
        BOOST_TEST(::fcntl(fd.get(), F_GETFD) == FD_CLOEXEC);
        BOOST_TEST(!pidfd_exited(fd.get()));
        BOOST_TEST(!co_await pidfd_wait(fd.get(), -1ms)); // negative: just checks
        BOOST_TEST(!co_await pidfd_wait(fd.get(), 30ms)); // the deadline passes
        BOOST_TEST(pidfd_send_signal(fd.get(), SIGKILL));
        BOOST_TEST(co_await pidfd_wait(fd.get(), localvm::no_deadline));
        BOOST_TEST(pidfd_exited(fd.get()));
        const int st = c.reap();
        BOOST_TEST(WIFSIGNALED(st));
        BOOST_TEST(WTERMSIG(st) == SIGKILL);
    });
}

BOOST_AUTO_TEST_CASE(an_exited_child_not_yet_reaped) {
    run_coroutine([]() -> asio::awaitable<void> {
        child c(3);
        // Its exit makes a pidfd opened before it readable...
        auto early = pidfd_open(c.pid);
        BOOST_REQUIRE(early);
        BOOST_TEST(co_await pidfd_wait(early.get(), 10s));
        // ...and a zombie still has its pid: a new pidfd opens, exited at once.
        auto late = pidfd_open(c.pid);
        BOOST_REQUIRE(late);
        BOOST_TEST(pidfd_exited(late.get()));
        BOOST_TEST(co_await pidfd_wait(late.get(), -1ms));
        BOOST_TEST(WEXITSTATUS(c.reap()) == 3);
    });
}

BOOST_AUTO_TEST_CASE(a_reaped_child) {
    run_coroutine([]() -> asio::awaitable<void> {
        child c(0);
        const pid_t pid = c.pid;
        auto fd = pidfd_open(pid);
        BOOST_REQUIRE(fd);
        c.reap();
        // The pidfd still names that process: exited, and no signal reaches
        // another one.
        BOOST_TEST(pidfd_exited(fd.get()));
        BOOST_TEST(co_await pidfd_wait(fd.get(), 1s));
        errno = 0;
        BOOST_TEST(!pidfd_send_signal(fd.get(), SIGKILL));
        BOOST_TEST(errno == ESRCH);
        // Its pid is free now (unless the kernel reused it this instant).
        errno = 0;
        auto again = pidfd_open(pid);
        if (!again)
            BOOST_TEST(errno == ESRCH);
    });
}

BOOST_AUTO_TEST_CASE(cancelling_the_wait) {
    run_coroutine([]() -> asio::awaitable<void> {
        child c;
        auto fd = pidfd_open(c.pid);
        BOOST_REQUIRE(fd);
        BOOST_TEST(co_await lvtest::ends_aborted_when_cancelled(pidfd_wait(fd.get(), 60s)));
        BOOST_TEST(!pidfd_exited(fd.get())); // the child is untouched
    });
}
