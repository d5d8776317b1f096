// stop powers a VM off even when its runtime filesystem is full: the state
// writes are best effort. A real full tmpfs, mounted in a private mount
// namespace of this test program (skips, exit 77, where that is not allowed).
#define BOOST_TEST_MODULE console_stop_full
#include <localvm/console/drain.hpp>
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "common.hpp"
#include "multiboot.hpp"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using console_test::temp_dir;

namespace {

// A private mount namespace, so the tmpfs goes away with this process.
void private_mounts_or_skip() {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        std::cerr << "cannot make a private mount namespace (" << std::strerror(errno)
                  << "): skipping\n";
        std::exit(77);
    }
}

// Fills the filesystem holding `dir` until a write fails with ENOSPC.
void fill(const fs::path& dir) {
    int fd = ::open((dir / "filler").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    BOOST_REQUIRE(fd >= 0);
    std::string block(4096, 'x');
    for (;;) {
        auto n = ::write(fd, block.data(), block.size());
        if (n < 0) {
            BOOST_REQUIRE(errno == ENOSPC);
            break;
        }
    }
    ::close(fd);
}

} // namespace

BOOST_AUTO_TEST_CASE(stop_powers_off_a_vm_whose_runtime_fs_is_full) {
    private_mounts_or_skip();
    temp_dir dir;
    auto run = dir / "run";
    fs::create_directories(run);
    BOOST_REQUIRE(::mount("tmpfs", run.c_str(), "tmpfs", 0, "size=1m,mode=0700") == 0);
    auto kernel = dir / "halt.bin";
    console_test::write_halt_kernel(kernel);
    // Whatever happens, no QEMU and no mount stay behind.
    struct cleanup {
        std::optional<pid_t> pid;
        fs::path mount;
        ~cleanup() {
            if (pid)
                ::kill(*pid, SIGKILL);
            ::umount2(mount.c_str(), MNT_DETACH);
        }
    } left{std::nullopt, run};
    auto& pid = left.pid;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            localvm::process::options img;
            img.argv = {"qemu-img", "create", "-q", "-f", "qcow2", (dir / "base.qcow2").string(),
                        "16M"};
            co_await localvm::process::run_checked(img);
            localvm::qemu::options o;
            o.name = "full";
            o.data_dir = dir / "data";
            o.runtime_dir = run;
            o.accel = localvm::qemu::accelerator::tcg;
            o.net = localvm::qemu::network::restricted;
            o.stop.powerdown_timeout = 500ms; // no OS: the button does nothing
            localvm::qemu::manager m(ex, o);
            std::vector<std::string> said;
            m.set_output([&](std::string_view line) { said.emplace_back(line); });
            co_await m.create(dir / "base.qcow2");
            localvm::start_options s;
            s.memory = "64M";
            s.boot = localvm::direct_boot{kernel, {}, {}};
            co_await m.start(s);
            pid = co_await m.pid();
            BOOST_REQUIRE(pid);
            // The console goes through the supervisor's FIFO into a bounded log.
            BOOST_TEST(fs::exists(localvm::console::drain_fifo(m.files().console_log)));
            BOOST_TEST(co_await m.wait_for_console("halted", 20000ms) == "halted");

            fill(run);
            co_await m.stop(); // before: threw "cannot write ... No space left on device"
            BOOST_TEST(co_await localvm::process::wait_exit(*pid, 0ms));
            BOOST_TEST(!co_await m.running());
            bool told = false;
            for (const auto& l : said)
                told = told || l.find("cannot record the stop") != std::string::npos;
            BOOST_TEST(told, "stop did not say that it could not record the stop");

            // With room again, the VM starts and stops as usual.
            fs::remove(run / "filler");
            co_await m.start(s);
            pid = co_await m.pid();
            co_await m.stop();
            auto st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST(!st.running);
            pid.reset();
        },
        60s);
}
