// The fault matrix: what happens to a VM when things around it fail. Each
// case prints `case NAME ok|FAIL`; the suite-wide leak check fails the
// program when any case left an fd, a child, a zombie, a QEMU or a socket
// behind. QEMU here runs UEFI firmware with nothing to boot: it runs, and
// ignores the ACPI power button.
#define BOOST_TEST_MODULE qemu_faults
#include "../../common/case_lines.hpp"
#include "common.hpp"

#include <localvm/process/detached.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <charconv>

#include <signal.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using localvm::qemu::boot_stage;
using localvm::testing::expect_error;
using namespace std::chrono_literals;

namespace {

asio::awaitable<void> create_vm(localvm::qemu::manager& m, const lvtest::vm_home& h) {
    localvm::process::options o;
    o.argv = {"qemu-img", "create", "-q", "-f", "qcow2", h.base.string(), "64M"};
    co_await localvm::process::run_checked(o);
    co_await m.create(h.base);
}

// The pid in a `qemu_spawned` detail ("pid 1234").
pid_t spawned_pid(std::string_view detail) {
    pid_t pid = 0;
    auto digits = detail.substr(detail.find_first_of("0123456789"));
    std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    return pid;
}

// SIGKILL to QEMU when start reaches `at`: start fails (or, past `cont`,
// returns with QEMU gone), nothing runs or says it runs, and the next start
// works.
void kill_qemu_during_start(boot_stage at) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            localvm::qemu::manager m(ex, h.options());
            co_await create_vm(m, h);
            pid_t qemu = 0;
            m.set_stage_sink([&](boot_stage s, std::string_view detail) {
                if (s == boot_stage::qemu_spawned)
                    qemu = spawned_pid(detail);
                if (s == at && qemu > 0)
                    ::kill(qemu, SIGKILL);
            });
            bool started = true;
            try {
                co_await m.start(lvtest::small_vm());
            } catch (const localvm::error& e) {
                started = false;
                BOOST_TEST((e.code() == errc::process_failed || e.code() == errc::monitor_closed),
                           "start failed with " << e.what());
            }
            BOOST_TEST_MESSAGE("start " << (started ? "returned" : "failed"));
            BOOST_REQUIRE(qemu > 0);
            BOOST_TEST(co_await localvm::process::wait_exit(qemu, 10000ms));
            BOOST_TEST(!co_await m.running());
            co_await expect_error(errc::not_running, [&] { return m.shell("true", {}); });
            m.set_stage_sink({});
            co_await m.start(lvtest::small_vm());
            BOOST_TEST(co_await m.running());
            co_await m.stop();
        },
        120s);
}

} // namespace

using lvtest::leak_check;
BOOST_TEST_GLOBAL_FIXTURE(leak_check);
using lvtest::case_lines;
BOOST_TEST_GLOBAL_FIXTURE(case_lines);

BOOST_AUTO_TEST_CASE(qemu_killed_right_after_spawn) { kill_qemu_during_start(boot_stage::qemu_spawned); }

BOOST_AUTO_TEST_CASE(qemu_killed_once_qmp_answers) { kill_qemu_during_start(boot_stage::qmp_ready); }

BOOST_AUTO_TEST_CASE(qemu_killed_right_after_cont) { kill_qemu_during_start(boot_stage::guest_running); }

// SIGKILL to QEMU while stop waits for the (ignored) power button: stop
// notices the exit at once, ends cleanly and records the VM as stopped.
BOOST_AUTO_TEST_CASE(qemu_killed_during_stop) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto o = h.options();
            o.stop.powerdown_timeout = 60s;
            localvm::qemu::manager m(ex, o);
            co_await create_vm(m, h);
            co_await m.start(lvtest::small_vm());
            auto pid = co_await m.pid();
            BOOST_REQUIRE(pid);
            std::string stop_said;
            m.set_output([&](std::string_view line) {
                stop_said += std::string(line) + "\n";
                if (line.find("ACPI power button") != std::string::npos)
                    ::kill(*pid, SIGKILL);
            });
            auto began = std::chrono::steady_clock::now();
            co_await m.stop();
            // Far less than the 60 s powerdown window: the exit ended the wait.
            BOOST_TEST((std::chrono::steady_clock::now() - began < 30s), stop_said);
            BOOST_TEST(!co_await m.running());
            auto st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST_MESSAGE("last end: " << to_string(st.state->last_end) << " "
                                            << st.state->last_end_detail);
            localvm::qemu::manager again(ex, h.options()); // a short powerdown window
            co_await again.start(lvtest::small_vm());
            co_await again.stop();
        },
        120s);
}

// A guest that ignores ACPI: stop escalates past the power button and
// QEMU still ends, within the configured windows.
BOOST_AUTO_TEST_CASE(guest_ignores_acpi) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto o = h.options();
            o.stop.powerdown_timeout = 2s;
            localvm::qemu::manager m(ex, o);
            co_await create_vm(m, h);
            co_await m.start(lvtest::small_vm());
            std::string said;
            m.set_output([&](std::string_view line) { said += std::string(line) + "\n"; });
            co_await m.stop();
            BOOST_TEST(!co_await m.running());
            BOOST_TEST(said.find("quit") != std::string::npos, said);
        },
        120s);
}

// Many start/stop cycles of one VM leave nothing behind: the leak check
// between the first and the last cycle finds no fd, child, zombie or QEMU.
BOOST_AUTO_TEST_CASE(start_stop_cycles_leave_nothing) {
    lvtest::vm_home h;
    const int cycles = std::getenv("LOCALVM_FAULT_CYCLES")
                           ? std::atoi(std::getenv("LOCALVM_FAULT_CYCLES"))
                           : 100;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto o = h.options();
            o.stop.powerdown_timeout = 50ms;
            localvm::qemu::manager m(ex, o);
            co_await create_vm(m, h);
            co_await m.start(lvtest::small_vm());
            co_await m.stop();
            auto before = localvm::testing::resource_snapshot::take();
            for (int i = 0; i < cycles; ++i) {
                co_await m.start(lvtest::small_vm());
                co_await m.stop();
            }
            localvm::testing::leak_check_options lo;
            lo.directories = {h.root};
            auto report = localvm::testing::find_leaks(before, lo);
            BOOST_TEST(report.clean(), "after " << cycles << " cycles:\n" << report.describe());
            BOOST_TEST_MESSAGE(cycles << " start/stop cycles");
        },
        1800s);
}
