// The console log stays bounded with a guest that floods the serial port:
// real QEMU (a multiboot guest written by the test) logs into the FIFO its
// supervisor drains; the log rotates at its limit, a follower reads every line intact
// across the rotations, and the files never pass the limit.
#define BOOST_TEST_MODULE console_log_bound
#include <localvm/console/drain.hpp>
#include <localvm/console/log.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "common.hpp"
#include "multiboot.hpp"
#include <optional>
#include <sys/syscall.h>

using namespace std::chrono_literals;
using console_test::temp_dir;
namespace asio = boost::asio;
namespace console = localvm::console;
namespace fs = std::filesystem;

BOOST_AUTO_TEST_CASE(a_flooding_guest_keeps_the_log_under_its_limit) {
    temp_dir dir;
    auto log = dir / "console.log";
    auto kernel = dir / "flood.bin";
    console_test::write_flood_kernel(kernel);
    const std::uint64_t limit = 64 * 1024;

    // QEMU as localvm runs it: under its supervisor, which copies the
    // console chardev's logfile= FIFO into the log.
    std::string chardev = "socket,id=serial0,path=" + (dir / "console.sock").string() +
                          ",server=on,wait=off,logfile=" + console::drain_fifo(log).string() +
                          ",logappend=on";
    localvm::process::detached_options o;
    o.argv = {"qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "32M",
              "-nodefaults", "-display", "none", "-chardev", chardev, "-serial",
              "chardev:serial0", "-kernel", kernel.string()};
    o.exit_status_file = dir / "qemu.status";
    o.stdout_file = dir / "qemu.log";
    o.stderr_file = dir / "qemu.log";
    o.drain_log = log;
    o.drain_rotate_bytes = limit;
    std::optional<localvm::process::detached_process> started;
    try {
        started.emplace(localvm::process::spawn_detached(o));
    } catch (const localvm::error& e) {
        if (e.code() != localvm::errc::not_found)
            throw;
        std::cerr << "qemu-system-x86_64 not found: skipping\n";
        std::exit(77);
    }
    started->commit();
    const pid_t qemu = started->pid();
    struct kill_qemu {
        pid_t pid;
        ~kill_qemu() { ::kill(pid, SIGKILL); }
    } guard{qemu};

    const std::string flood = "flood 0123456789 abcdefghijklmnopqrstuvwxyz";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            // The guest prints from the start: a wait works across rotations.
            auto first = co_await console::wait_for_console(log, "flood", 20s);
            BOOST_TEST(flood.starts_with(first)); // maybe the line being written
            console::console_log follower(log);
            std::uint64_t seen = 0;
            std::size_t lines = 0, bad = 0;
            auto start = std::chrono::steady_clock::now();
            while (seen < 1024 * 1024) { // 16 times the limit
                for (const auto& l : follower.read_lines()) {
                    seen += l.size() + 1;
                    ++lines;
                    bad += l != flood;
                }
                // (mid-rotation, the path may be missing for a moment)
                for (const auto& f : {log, console::rotated_log(log)}) {
                    std::error_code ec;
                    auto size = fs::file_size(f, ec);
                    BOOST_REQUIRE(ec || size <= limit);
                }
                co_await follower.wait_change();
            }
            auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);
            BOOST_TEST_MESSAGE("followed " << lines << " lines (" << seen / 1024 << " KiB) in "
                                           << secs.count() << " s");
            BOOST_TEST(bad == 0u, bad << " of " << lines << " lines were garbled");
            // The last lines, the one being written included (a prefix).
            auto tail = console::read_tail(log, 3);
            auto nl = tail.rfind('\n');
            BOOST_TEST(tail.substr(0, nl) == flood + "\n" + flood);
            BOOST_TEST(flood.starts_with(tail.substr(nl + 1)));

            // QEMU gone: its supervisor copies the rest and removes the FIFO.
            ::kill(qemu, SIGKILL);
            int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, qemu, 0));
            if (pidfd >= 0) {
                asio::posix::stream_descriptor exited(ex, pidfd);
                co_await exited.async_wait(asio::posix::descriptor_base::wait_read,
                                           asio::use_awaitable);
            }
            BOOST_TEST(co_await console::wait_drained(log, 5s));
            BOOST_TEST(!fs::exists(console::drain_fifo(log)));
            BOOST_TEST(fs::file_size(log) <= limit);
        },
        60s);
}
