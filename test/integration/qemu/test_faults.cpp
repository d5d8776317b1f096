// Faults in start and stop (issue #12): a starter killed mid-start, a
// throwing stage sink, a QMP peer that stalls, automatic KVM meeting a
// failure that is not KVM's, query after stop. Real QEMU (TCG, no guest OS)
// where the behaviour lives there, the fake QEMU (fake_qemu.cpp, through
// options::qemu_binary) where a fault must be made on demand; QEMU killed
// at each stage of start and during stop, and many start/stop cycles. Each
// case prints `case NAME ok|FAIL`, and the suite-wide leak check fails the
// program when any case left an fd, a child, a zombie, a QEMU or a socket.
#define BOOST_TEST_MODULE qemu_faults
#include "../../common/case_lines.hpp"
#include "common.hpp"

#include <localvm/process/detached.hpp>
#include <localvm/qemu/accel.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <signal.h>
#include <stdlib.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using lvtest::expect_error;
using lvtest::make_base;
using lvtest::slurp;
using namespace std::chrono_literals;

namespace {

std::string fake_qemu() {
    const char* p = std::getenv("LOCALVM_FAKE_QEMU");
    BOOST_REQUIRE(p);
    return p;
}

// The fake's behaviour for the starts of one test (it inherits our environment).
struct fake_mode {
    explicit fake_mode(const std::string& mode, const std::string& stderr_text = {}) {
        ::setenv("FAKE_QEMU_MODE", mode.c_str(), 1);
        ::setenv("FAKE_QEMU_STDERR", stderr_text.c_str(), 1);
    }
    ~fake_mode() {
        ::unsetenv("FAKE_QEMU_MODE");
        ::unsetenv("FAKE_QEMU_STDERR");
    }
};

localvm::start_options no_ports() {
    localvm::start_options s;
    s.memory = "128M";
    s.cpus = 1;
    return s;
}

pid_t pid_of(std::string_view detail) { // "pid 1234"
    return static_cast<pid_t>(std::stol(std::string(detail.substr(detail.find(' ') + 1))));
}

// Creates and starts `m`'s VM on `base`, then stops it: what `m` said
// meanwhile, a line each.
asio::awaitable<std::string> start_and_stop(localvm::qemu::manager& m, fs::path base) {
    std::string said;
    m.set_output([&](std::string_view l) { said += std::string(l) + "\n"; });
    co_await m.create(base);
    co_await m.start(no_ports());
    co_await m.stop();
    m.set_output({});
    co_return said;
}

// SIGKILL to QEMU when start reaches `at`: start fails (or, past `cont`,
// returns with QEMU gone), nothing runs or says it runs, and the next start
// works.
void kill_qemu_during_start(localvm::qemu::boot_stage at) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            localvm::qemu::manager m(ex, h.options());
            co_await make_base(h);
            co_await m.create(h.base);
            pid_t qemu = 0;
            m.set_stage_sink([&](localvm::qemu::boot_stage s, std::string_view detail) {
                if (s == localvm::qemu::boot_stage::qemu_spawned)
                    qemu = pid_of(detail);
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

// Item 4: the starting process SIGKILLed at each stage of start leaves no
// QEMU (its supervisor kills it once the commit channel closes), and the
// next start works.
BOOST_AUTO_TEST_CASE(a_starter_killed_mid_start_leaves_no_qemu) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            const char* starter = std::getenv("LOCALVM_STARTER");
            BOOST_REQUIRE(starter);
            struct kill_point {
                std::string at;
                bool ports;
            };
            // qemu-spawned: just spawned; qmp-ready: QMP connected; qmp-ready+
            // with ports: waiting for info usernet (before the state and
            // cont); without: waiting for cont's reply (state written);
            // guest-running: after cont, before the commit.
            for (const auto& k : {kill_point{"qemu-spawned", false}, kill_point{"qmp-ready", false},
                                  kill_point{"qmp-ready+", true}, kill_point{"qmp-ready+", false},
                                  kill_point{"guest-running", false}}) {
                BOOST_TEST_CONTEXT("killed at " << k.at << (k.ports ? " (ports)" : "")) {
                    localvm::process::options o;
                    o.argv = {starter, "start", (h.root / "data").string(),
                              (h.root / "run").string(), "vm"};
                    o.env_overrides = {"LOCALVM_STARTER_DIE_AT=" + k.at,
                                       k.ports ? "LOCALVM_STARTER_PORTS=1"
                                               : "LOCALVM_STARTER_PORTS"};
                    o.timeout = 60s;
                    auto r = co_await localvm::process::run(std::move(o));
                    BOOST_TEST(r.signal == SIGKILL, r.describe() << "\n" << r.err);
                    BOOST_REQUIRE(r.out.starts_with("spawned "));
                    pid_t qemu = static_cast<pid_t>(std::stol(r.out.substr(8)));
                    bool gone = co_await localvm::process::wait_exit(qemu, 10s);
                    BOOST_TEST(gone, "QEMU " << qemu << " outlived its killed starter");
                    if (!gone)
                        ::kill(qemu, SIGKILL);
                    // No paused QEMU answers for the VM; start works again.
                    BOOST_TEST(!co_await m.running());
                    auto st = co_await m.query();
                    if (st.state && st.state->pid == qemu) {
                        BOOST_TEST((st.state->last_end == localvm::qemu::end_reason::killed));
                        BOOST_TEST(st.state->last_end_detail.find("starter ended") !=
                                       std::string::npos,
                                   st.state->last_end_detail);
                    }
                    co_await m.start(no_ports());
                    BOOST_TEST(co_await m.running());
                    co_await m.stop();
                }
            }
        },
        300s);
}

// Item 4: a stage sink that throws fails the start and takes its QEMU along.
BOOST_AUTO_TEST_CASE(a_throwing_stage_sink_leaks_no_qemu) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            using localvm::qemu::boot_stage;
            for (auto at :
                 {boot_stage::qemu_spawned, boot_stage::qmp_ready, boot_stage::guest_running}) {
                BOOST_TEST_CONTEXT("throwing at " << to_string(at)) {
                    pid_t qemu = -1;
                    m.set_stage_sink([&](boot_stage stage, std::string_view detail) {
                        if (stage == boot_stage::qemu_spawned)
                            qemu = pid_of(detail);
                        if (stage == at)
                            throw std::runtime_error("sink says no");
                    });
                    bool threw = false;
                    try {
                        co_await m.start(lvtest::small_vm());
                    } catch (const std::runtime_error& e) {
                        threw = std::string(e.what()) == "sink says no";
                    }
                    BOOST_TEST(threw);
                    BOOST_REQUIRE(qemu > 0);
                    // Gone already when start threw: not a moment later.
                    bool gone = co_await localvm::process::wait_exit(qemu, 0ms);
                    BOOST_TEST(gone);
                    if (!gone) {
                        ::kill(qemu, SIGKILL);
                        co_await localvm::process::wait_exit(qemu, 10s);
                    }
                    BOOST_TEST(!co_await m.running());
                    m.set_stage_sink({});
                    co_await m.start(no_ports());
                    co_await m.stop();
                }
            }
        },
        240s);
}

// Item 10: a start cancelled while it waits on QMP kills its QEMU and waits
// for it on the io_context (awaitable cleanup that runs to its end although
// the cancellation was delivered): QEMU is gone when start completes.
BOOST_AUTO_TEST_CASE(a_cancelled_start_leaves_no_qemu) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
        },
        60s);
    asio::io_context ctx;
    localvm::qemu::manager m(ctx.get_executor(), h.options());
    asio::cancellation_signal cancel;
    pid_t qemu = -1;
    m.set_stage_sink([&](localvm::qemu::boot_stage stage, std::string_view detail) {
        if (stage == localvm::qemu::boot_stage::qemu_spawned)
            qemu = pid_of(detail);
        if (stage == localvm::qemu::boot_stage::qmp_ready) // cancel `info usernet` in flight
            asio::post(ctx, [&] { cancel.emit(asio::cancellation_type::terminal); });
    });
    bool finished = false, aborted = false, gone_at_end = false;
    asio::co_spawn(ctx, m.start(lvtest::small_vm()),
                   asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
                       finished = true;
                       gone_at_end = qemu > 0 && !localvm::process::alive(qemu);
                       try {
                           if (e)
                               std::rethrow_exception(e);
                       } catch (const boost::system::system_error& err) {
                           aborted = err.code() == asio::error::operation_aborted;
                       }
                   }));
    ctx.run_for(60s);
    BOOST_TEST(finished);
    BOOST_TEST(aborted);
    BOOST_REQUIRE(qemu > 0);
    BOOST_TEST(gone_at_end, "QEMU " << qemu << " still ran when the cancelled start completed");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            if (localvm::process::alive(qemu)) {
                ::kill(qemu, SIGKILL);
                co_await localvm::process::wait_exit(qemu, 10s);
            }
            localvm::qemu::manager again(co_await asio::this_coro::executor, h.options());
            BOOST_TEST(!co_await again.running());
        },
        30s);
}

// Item 9: a QEMU whose monitor greets and then goes silent cannot hold
// start for longer than start_timeout; the error names the command.
BOOST_AUTO_TEST_CASE(start_gives_up_on_a_silent_monitor_within_start_timeout) {
    lvtest::vm_home h;
    fake_mode mode("stall");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.qemu_binary = fake_qemu();
            o.start_timeout = 2s;
            localvm::qemu::manager m(ex, o);
            co_await m.create(h.base);
            pid_t fake = -1;
            m.set_stage_sink([&](localvm::qemu::boot_stage stage, std::string_view detail) {
                if (stage == localvm::qemu::boot_stage::qemu_spawned)
                    fake = pid_of(detail);
            });
            auto t0 = std::chrono::steady_clock::now();
            auto what = co_await expect_error(errc::timeout, [&] { return m.start(no_ports()); });
            auto took = std::chrono::steady_clock::now() - t0;
            BOOST_TEST(what.find("QMP command cont") != std::string::npos, what);
            BOOST_TEST(took < 2s + 3s, "start took " << (took / 1ms) << " ms");
            BOOST_REQUIRE(fake > 0);
            BOOST_TEST(co_await localvm::process::wait_exit(fake, 0ms));
            BOOST_TEST(!co_await m.running());
            BOOST_TEST(!fs::exists(m.files().state));
        },
        60s);
}

// Item 9 and 11: stop gets past a monitor that never answers
// system_powerdown or quit, to SIGTERM, and records that SIGTERM ended it.
BOOST_AUTO_TEST_CASE(stop_gets_past_a_silent_monitor_to_signals) {
    lvtest::vm_home h;
    fake_mode mode("answer");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.qemu_binary = fake_qemu();
            o.stop.powerdown_timeout = 1s;
            o.stop.powerdown_repeat = 300ms;
            o.stop.quit_timeout = 1s;
            localvm::qemu::manager m(ex, o);
            std::vector<std::string> log;
            m.set_output([&](std::string_view l) { log.emplace_back(l); });
            co_await m.create(h.base);
            co_await m.start(no_ports());
            BOOST_TEST(co_await m.running());
            auto t0 = std::chrono::steady_clock::now();
            co_await m.stop();
            auto took = std::chrono::steady_clock::now() - t0;
            BOOST_TEST(took < 1s + 1s + 3s, "stop took " << (took / 1ms) << " ms");
            BOOST_TEST(!co_await m.running());
            std::string all;
            for (auto& l : log)
                all += l + "\n";
            BOOST_TEST(all.find("QMP command system_powerdown: no reply") != std::string::npos,
                       all);
            BOOST_TEST(all.find("quit failed: QMP command quit: no reply") != std::string::npos,
                       all);
            BOOST_TEST(all.find("stopped by SIGTERM") != std::string::npos, all);
            auto st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->last_end == localvm::qemu::end_reason::stopped));
            BOOST_TEST((st.state->stopped_by == localvm::qemu::stop_step::sigterm));
            BOOST_TEST(st.state->last_end_detail == "signaled 15");
        },
        60s);
}

// Item 11: a real QEMU with no guest OS ignores the power button: stop
// presses it again within the window, then quits, and records that quit
// ended it. (Ending through ACPI needs a guest: test/e2e/qemu.)
BOOST_AUTO_TEST_CASE(stop_records_quit_for_a_guest_that_ignores_acpi) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.stop.powerdown_timeout = 1s;
            o.stop.powerdown_repeat = 400ms;
            localvm::qemu::manager m(ex, o);
            const std::string all = co_await start_and_stop(m, h.base);
            BOOST_TEST(all.find("ACPI power button again") != std::string::npos, all);
            BOOST_TEST(all.find("stopped by QMP quit") != std::string::npos, all);
            auto st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->stopped_by == localvm::qemu::stop_step::quit));
        },
        60s);
}

// The guest powers off just as the button is pressed again: QEMU closes its
// monitor (SHUTDOWN, no reply) and takes a moment to exit. The button ended
// it, not a quit sent to a QEMU on its way out (cli_cloud_efi saw that on
// a real UEFI guest: "system_powerdown failed: ... ended (EOF)", then
// "stopped by QMP quit").
BOOST_AUTO_TEST_CASE(stop_credits_the_button_when_qemu_exits_during_a_press) {
    lvtest::vm_home h;
    fake_mode late("late-off");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.qemu_binary = fake_qemu();
            o.stop.powerdown_timeout = 30s;
            o.stop.powerdown_repeat = 200ms;
            localvm::qemu::manager m(ex, o);
            const std::string all = co_await start_and_stop(m, h.base);
            BOOST_TEST(all.find("ACPI power button again") != std::string::npos, all);
            BOOST_TEST(all.find("stopped by the ACPI power button") != std::string::npos, all);
            BOOST_TEST(all.find("quit") == std::string::npos, all);
            auto st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->stopped_by == localvm::qemu::stop_step::powerdown));
            BOOST_TEST(st.state->last_end_detail == "exited 0");
        },
        60s);
}

// Item 10: query of a stopped VM does not wait for an exit status that
// stop has read and removed: it completes without the io_context ever
// blocking (poll() only runs what is ready).
BOOST_AUTO_TEST_CASE(query_after_stop_does_not_wait) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            co_await m.start(no_ports());
            co_await m.stop();
        },
        60s);
    asio::io_context ctx;
    localvm::qemu::manager m(ctx.get_executor(), h.options());
    std::optional<localvm::qemu::status> st;
    asio::co_spawn(ctx, m.query(), [&](std::exception_ptr e, localvm::qemu::status s) {
        if (!e)
            st = std::move(s);
    });
    ctx.poll();
    BOOST_TEST(st.has_value(), "query waited on a stopped VM");
    if (st) {
        BOOST_TEST(!st->running);
        BOOST_REQUIRE(st->state);
        BOOST_TEST((st->state->last_end == localvm::qemu::end_reason::stopped));
    }
    ctx.run_for(2s); // let a waiting query finish before its manager goes
}

// Item 5: under automatic KVM, a failure that is not KVM's (a port in use)
// fails the start with its own error and leaves KVM enabled (no marker).
BOOST_AUTO_TEST_CASE(automatic_kvm_does_not_fall_back_on_other_failures) {
    if (!localvm::qemu::kvm_problem(localvm::qemu::arch::amd64).empty()) {
        BOOST_TEST_MESSAGE("skipped: automatic does not pick KVM here: "
                           << localvm::qemu::kvm_problem(localvm::qemu::arch::amd64));
        return;
    }
    lvtest::vm_home h;
    ::unsetenv("LOCALVM_ACCEL");
    fake_mode mode("fail", "qemu-system-x86_64: -nic user,hostfwd=tcp:127.0.0.1:2222-:22: could "
                           "not set up host forwarding rule 'tcp:127.0.0.1:2222-:22': port in use");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.accel = localvm::qemu::accelerator::automatic;
            o.qemu_binary = fake_qemu();
            localvm::qemu::manager m(ex, o);
            std::vector<std::string> log;
            m.set_output([&](std::string_view l) { log.emplace_back(l); });
            co_await m.create(h.base);
            auto what =
                co_await expect_error(errc::process_failed, [&] { return m.start(no_ports()); });
            BOOST_TEST(what.find("port in use") != std::string::npos, what);
            auto marker = o.runtime_dir / "kvm-hangs";
            BOOST_TEST(!fs::exists(marker), slurp(marker));
            for (auto& l : log)
                BOOST_TEST(l.find("restarting with tcg") == std::string::npos, l);
        },
        60s);
}

// Item 5: a QEMU that says KVM failed makes automatic fall back to TCG (the
// fake execs the real QEMU when not given -accel kvm) and leaves the marker.
BOOST_AUTO_TEST_CASE(automatic_kvm_falls_back_when_qemu_names_kvm) {
    if (!localvm::qemu::kvm_problem(localvm::qemu::arch::amd64).empty()) {
        BOOST_TEST_MESSAGE("skipped: automatic does not pick KVM here");
        return;
    }
    lvtest::vm_home h;
    ::unsetenv("LOCALVM_ACCEL");
    fake_mode mode("kvm");
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.accel = localvm::qemu::accelerator::automatic;
            o.qemu_binary = fake_qemu();
            localvm::qemu::manager m(ex, o);
            std::vector<std::pair<std::string, std::string>> stages;
            m.set_stage_sink([&](localvm::qemu::boot_stage s, std::string_view d) {
                stages.emplace_back(localvm::qemu::to_string(s), d);
            });
            co_await m.create(h.base);
            co_await m.start(no_ports());
            auto st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->accel == localvm::qemu::accelerator::tcg));
            // The timeline names the KVM attempt, why it was given up, and
            // the TCG restart; the state keeps the reason for `status`.
            std::vector<std::string> words;
            for (auto& [w, d] : stages)
                words.push_back(w);
            BOOST_TEST((words == std::vector<std::string>{"qemu-spawned", "kvm-fallback",
                                                          "qemu-spawned", "qmp-ready",
                                                          "guest-running"}));
            BOOST_REQUIRE(stages.size() >= 3u);
            BOOST_TEST(stages[0].second.find("kvm attempt") != std::string::npos, stages[0].second);
            BOOST_TEST(stages[1].second.find("Could not access KVM kernel module") !=
                           std::string::npos,
                       stages[1].second);
            BOOST_TEST(stages[2].second.find("tcg (after KVM failed: ") != std::string::npos,
                       stages[2].second);
            BOOST_TEST(st.state->accel_fallback == stages[1].second);
            auto marker = o.runtime_dir / "kvm-hangs";
            BOOST_TEST(slurp(marker).find("Could not access KVM kernel module") !=
                           std::string::npos,
                       slurp(marker));
            co_await m.stop();
        },
        90s);
}

BOOST_AUTO_TEST_CASE(qemu_killed_right_after_spawn) { kill_qemu_during_start(localvm::qemu::boot_stage::qemu_spawned); }

BOOST_AUTO_TEST_CASE(qemu_killed_once_qmp_answers) { kill_qemu_during_start(localvm::qemu::boot_stage::qmp_ready); }

BOOST_AUTO_TEST_CASE(qemu_killed_right_after_cont) { kill_qemu_during_start(localvm::qemu::boot_stage::guest_running); }

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
            co_await make_base(h);
            co_await m.create(h.base);
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
            co_await make_base(h);
            co_await m.create(h.base);
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
