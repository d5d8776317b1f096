#define BOOST_TEST_MODULE console_qemu
#include <localvm/console/serial.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "common.hpp"
#include <fcntl.h>
#include <pty.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace std::chrono_literals;
using console_test::temp_dir;
using localvm::errc;
using localvm::console::attach;
using localvm::console::attach_end;
using localvm::console::attach_options;
namespace asio = boost::asio;
namespace ex = asio::experimental;

namespace {

constexpr auto test_deadline = 30s;

// QEMU with the backend's serial console chardev, daemonized: when the
// starting process exits, the socket listens (no waiting for files).
struct qemu_vm {
    temp_dir dir;
    std::filesystem::path sock = dir / "console.sock";
    std::filesystem::path log = dir / "console.log";
    pid_t pid = -1;

    qemu_vm() {
        std::string chardev = "socket,id=serial0,path=" + sock.string() +
                              ",server=on,wait=off,logfile=" + log.string() + ",logappend=on";
        std::string pidfile = (dir / "qemu.pid").string();
        std::vector<std::string> args{
            "qemu-system-x86_64", "-machine", "none",  "-nodefaults", "-display", "none",
            "-daemonize",         "-pidfile", pidfile, "-chardev",    chardev};
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_t starter;
        int rc = ::posix_spawnp(&starter, argv[0], nullptr, nullptr, argv.data(), environ);
        if (rc == ENOENT) {
            std::cerr << "qemu-system-x86_64 not found: skipping\n";
            std::exit(77);
        }
        BOOST_REQUIRE(rc == 0);
        int status = 0;
        ::waitpid(starter, &status, 0); // returns once QEMU is set up
        BOOST_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        std::ifstream(pidfile) >> pid;
        BOOST_REQUIRE(pid > 0);
    }
    ~qemu_vm() {
        if (pid > 0)
            ::kill(pid, SIGKILL);
    }
};

struct pty {
    int master = -1, slave = -1;
    pty() { BOOST_REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0); }
    ~pty() {
        ::close(master);
        ::close(slave);
    }
};

// Attaches through `p`, waits for the hint (raw mode is on by then), runs
// `then` and returns how attach ended.
asio::awaitable<attach_end> attach_and(const std::filesystem::path& sock, pty& p,
                                       std::function<void(asio::posix::stream_descriptor&)> then) {
    auto exec = co_await asio::this_coro::executor;
    asio::posix::stream_descriptor master(exec, ::fcntl(p.master, F_DUPFD_CLOEXEC, 0));
    attach_options opts;
    opts.input_fd = opts.output_fd = p.slave;
    opts.hint = localvm::console::attach_hint("qemu");
    auto user = [&]() -> asio::awaitable<void> {
        std::string seen;
        while (seen.find("detaches.\r\n") == std::string::npos) {
            char buf[256];
            auto n = co_await master.async_read_some(asio::buffer(buf), asio::use_awaitable);
            seen.append(buf, n);
        }
        then(master);
    };
    auto [order, attach_ex, end, user_ex] =
        co_await ex::make_parallel_group(asio::co_spawn(exec, attach(sock, opts), asio::deferred),
                                         asio::co_spawn(exec, user(), asio::deferred))
            .async_wait(ex::wait_for_one_error(), asio::use_awaitable);
    for (auto& e : {attach_ex, user_ex})
        if (e)
            std::rethrow_exception(e);
    co_return end;
}

} // namespace

BOOST_AUTO_TEST_CASE(attach_detach_reattach_and_qemu_exit) {
    qemu_vm vm;
    pty p;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, vm.pid, 0));
            BOOST_REQUIRE(pidfd >= 0);
            asio::posix::stream_descriptor exited(exec, pidfd);
            auto type_escape = [](asio::posix::stream_descriptor& m) {
                BOOST_REQUIRE(::write(m.native_handle(), "ls\x1d", 3) == 3);
            };
            BOOST_TEST((co_await attach_and(vm.sock, p, type_escape) == attach_end::detached));
            // QEMU takes the next client once the first one left.
            BOOST_TEST((co_await attach_and(vm.sock, p, type_escape) == attach_end::detached));
            BOOST_TEST(::kill(vm.pid, 0) == 0); // detaching left QEMU running
            auto kill_qemu = [&](asio::posix::stream_descriptor&) {
                ::kill(vm.pid, SIGTERM);
            };
            BOOST_TEST((co_await attach_and(vm.sock, p, kill_qemu) == attach_end::vm_closed));
            // SIGTERM: QEMU drops clients first and removes the socket as it
            // exits; wait for the exit itself before expecting not_running.
            co_await exited.async_wait(asio::posix::descriptor_base::wait_read,
                                       asio::use_awaitable);
            vm.pid = -1;
            try {
                attach_options opts;
                opts.input_fd = opts.output_fd = p.slave;
                co_await attach(vm.sock, opts);
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::not_running);
            }
        },
        test_deadline);
}

BOOST_AUTO_TEST_CASE(wait_for_console_fails_fast_when_qemu_dies) {
    qemu_vm vm;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, vm.pid, 0));
            BOOST_REQUIRE(pidfd >= 0);
            asio::posix::stream_descriptor exited(exec, pidfd);
            auto hook = [&]() -> asio::awaitable<std::string> {
                co_await exited.async_wait(asio::posix::descriptor_base::wait_read,
                                           asio::use_awaitable);
                co_return "QEMU was killed";
            };
            auto killer = [&]() -> asio::awaitable<void> {
                for (int i = 0; i < 20; ++i)
                    co_await asio::post(exec, asio::use_awaitable);
                ::kill(vm.pid, SIGKILL);
            };
            auto forever = localvm::no_deadline;
            auto [order, wait_ex, line, killer_ex] =
                co_await ex::make_parallel_group(
                    asio::co_spawn(
                        exec, localvm::console::wait_for_console(vm.log, "login:", forever, hook),
                        asio::deferred),
                    asio::co_spawn(exec, killer(), asio::deferred))
                    .async_wait(ex::wait_for_all(), asio::use_awaitable);
            vm.pid = -1;
            BOOST_REQUIRE(wait_ex);
            try {
                std::rethrow_exception(wait_ex);
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::guest_died, e.what());
            }
        },
        test_deadline);
}
