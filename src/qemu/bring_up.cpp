// Bring-up: spawn QEMU paused, wait for its monitor socket, connect QMP,
// read the bound forward ports, record the state, `cont`; with KVM chosen
// automatically, watch the boot and fall back to TCG when KVM fails.
#include "detail/await.hpp"
#include "detail/backoff.hpp"
#include "detail/race.hpp"
#include "fallback.hpp"
#include "guest_clock.hpp"
#include "manager_impl.hpp"
#include "snapshot_files.hpp"
#include "watch.hpp"

#include <localvm/atomic_file.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qemu/accel.hpp>
#include <localvm/qmp/client.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <chrono>

#include <signal.h>

namespace localvm::qemu {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

// QEMU reports the agent port's state at once after `cont` of a restored
// machine (on the virtual clock's next tick); the agent in a restored guest
// is already running and answers within a second even under TCG.
constexpr milliseconds restore_port_timeout{5000};
constexpr milliseconds restore_clock_timeout{10000};

// Ends a QEMU that `start` spawned and did not commit, and waits (at most
// 5 s, on the io_context) until it is gone. Its supervisor SIGKILLs it once
// the commit channel closes; the direct SIGKILL covers a supervisor that is
// gone itself.
asio::awaitable<void> end_uncommitted(process::detached_process& proc) {
    std::optional<process::pidfd> fd;
    try {
        fd.emplace(process::pidfd::open(proc.pid()));
    } catch (const localvm::error&) {
    }
    proc.abandon();
    if (!fd)
        co_return;
    fd->send_signal(SIGKILL);
    co_await fd->wait_exit(milliseconds(5000));
}

} // namespace

asio::awaitable<std::optional<detail::pending_clock>>
manager::impl::launch(launch_plan plan, std::vector<nic_state> nics,
                      const std::optional<vm_state>& previous) {
    const fs::path kvm_marker = files.runtime.parent_path() / "kvm-hangs";
    // A restore runs on the accelerator its snapshot was saved with.
    auto choice = plan.incoming ? accel_choice{plan.accel, "as saved in the snapshot", false}
                                : resolve_accelerator(opts.accel, opts.architecture, kvm_marker);
    plan.accel = choice.accel;
    std::string fallback; // why KVM was given up, once it was
    for (;;) {
        auto argv = command_line(plan);
        say("starting " + plan.qemu_binary.string() + " (" + choice.reason + ")");
        process::detached_options d;
        d.argv = argv;
        d.stdout_file = files.qemu_log;
        d.stderr_file = files.qemu_log;
        d.exit_status_file = files.exit_status;
        // QEMU's console log: its supervisor copies the FIFO QEMU writes
        // (the chardev's logfile=) into files.console_log, rotating it.
        d.drain_log = files.console_log;
        // Until commit(), QEMU dies with this process (or this object): a
        // starter killed mid-start leaves no paused QEMU behind.
        auto proc = co_await process::launch_detached(d); // not blocking the thread
        const pid_t pid = proc.pid();
        const boot_watch watch = choice.watch_boot ? boot_watch::kvm_watchdog : boot_watch::none;
        std::exception_ptr failure;
        auto end = bring_up_end::silent;
        std::optional<detail::pending_clock> clock;
        try {
            stage(boot_stage::qemu_spawned, detail::spawned_detail(pid, choice, opts.kvm_watchdog));
            vm_state record;
            record.started_at = detail::unix_now();
            record.nics = nics;
            record.accel_fallback = fallback; // so that status says why tcg
            end = co_await bring_up(pid, plan, watch, std::move(record), clock);
        } catch (...) {
            failure = std::current_exception();
        }
        if (!failure && end == bring_up_end::running) {
            // false only if QEMU died this instant: as if right after start
            co_await proc.hand_over();
            forward_qemu_log();
            say("running, pid " + std::to_string(pid));
            co_return clock;
        }
        clock.reset(); // its monitor connection goes before QEMU
        // Nothing half-done: the QEMU we spawned goes, with its sockets. The
        // cleanup must run to its end, also when this start was cancelled:
        // asio would throw at the next co_await of a cancelled coroutine.
        co_await asio::this_coro::reset_cancellation_state();
        co_await end_uncommitted(proc);
        // Its supervisor copies the console's last output, removes the FIFO
        // and records the end right after; let it, before cleaning up.
        co_await detail::wait_for_path(files.exit_status, milliseconds(2000));
        const std::string qemu_said = qemu_log_tail(40);
        forward_qemu_log();
        clean_runtime(runtime_logs::keep);
        std::error_code ec;
        fs::remove(files.state, ec);
        if (previous)
            write_state(*previous);
        // KVM chosen automatically falls back to TCG (for good, through the
        // marker) only when KVM is to blame: a silent boot (the watchdog) or
        // QEMU's own words naming KVM. Anything else is this start's error.
        std::string why;
        if (failure) {
            try {
                std::rethrow_exception(failure);
            } catch (const localvm::error& e) {
                if (watch == boot_watch::none || e.code() == asio::error::operation_aborted ||
                    !names_kvm_failure(qemu_said))
                    throw;
                why = e.what();
            }
        } else {
            why = "no console output within " + std::to_string(opts.kvm_watchdog.count()) +
                  " ms: KVM hangs here";
        }
        fallback = detail::fallback_reason(failure ? why : std::string(), qemu_said,
                                           opts.kvm_watchdog);
        say("KVM did not work (" + fallback + "); restarting with tcg");
        stage(boot_stage::kvm_fallback, fallback);
        write_file_atomic(kvm_marker,
                          "localvm's automatic accelerator uses tcg on this host: KVM failed:\n" +
                              why + "\n");
        plan.accel = accelerator::tcg;
        choice = {accelerator::tcg, "after KVM failed: " + fallback, false};
        clean_runtime(runtime_logs::remove);
    }
}

asio::awaitable<bring_up_end> manager::impl::bring_up(pid_t pid, const launch_plan& plan,
                                                      boot_watch watch, vm_state record,
                                                      std::optional<detail::pending_clock>& clock) {
    auto deadline = std::chrono::steady_clock::now() + opts.start_timeout;
    auto remaining = [&] { return localvm::detail::time_left(deadline); };
    auto exited = [&](const std::string& during) -> std::string {
        std::string how = "exited";
        if (auto st = process::read_exit_status(files.exit_status))
            how = st->how + " " + std::to_string(st->number);
        auto tail = qemu_log_tail(20);
        return plan.qemu_binary.string() + " " + how + " " + during +
               (tail.empty() ? std::string() : ":\n" + tail);
    };

    // The first to finish decides, also when it throws: a failing watch must
    // not wait for QEMU to exit (or for the rest of start_timeout).
    auto appeared =
        co_await localvm::detail::race(detail::wait_for_path(files.qmp_socket, remaining()),
                                       process::wait_exit(pid, remaining()));
    if (appeared.index() == 1 && std::get<1>(appeared)) {
        co_await detail::wait_for_path(files.exit_status, milliseconds(2000));
        throw_error(errc::process_failed, exited("during start"));
    }
    if (appeared.index() == 0 && !std::get<0>(appeared))
        throw_error(errc::timeout, "waiting " + std::to_string(opts.start_timeout.count()) +
                                       " ms for QEMU's monitor socket " +
                                       files.qmp_socket.string());

    // QEMU creates the socket file a moment before it listens on it: a
    // refused connection in that window is retried briefly.
    std::optional<qmp::client> connected;
    for (localvm::detail::backoff pause(milliseconds(1), milliseconds(50));;) {
        qmp::client_options co;
        co.connect_timeout = remaining();
        try {
            connected.emplace(co_await qmp::client::connect(files.qmp_socket.string(), co));
            break;
        } catch (const localvm::error& e) {
            if (e.code() != errc::monitor_closed || std::chrono::steady_clock::now() >= deadline)
                throw;
        }
        if (!process::alive(pid)) {
            co_await detail::wait_for_path(files.exit_status, milliseconds(2000));
            throw_error(errc::process_failed, exited("during start"));
        }
        asio::steady_timer t(co_await asio::this_coro::executor, pause.next());
        co_await t.async_wait(asio::use_awaitable);
    }
    auto& client = *connected;
    stage(boot_stage::qmp_ready, {});
    vm_state& s = record;
    s.pid = pid;
    s.accel = plan.accel;
    s.ports = plan.ports;
    // Every command gets what is left of start_timeout: a QEMU that stalls
    // after its greeting must not hold start (and the VM lock) for ever.
    auto within_start = [&] {
        qmp::execute_options eo;
        eo.timeout = remaining();
        return eo;
    };
    // A restored machine: QEMU says after `cont` whether the guest agent's
    // port is open (guest_clock.hpp); subscribed first, so nothing is missed.
    std::optional<qmp::subscription> port_events;
    if (plan.incoming) {
        co_await detail::load_state(client, files, remaining());
        // Before `cont`: from then on the clone's disk may change, and a
        // later start must not restore the saved memory onto it.
        detail::mark_restored(files);
        if (!plan.agent_socket.empty())
            port_events.emplace(client.subscribe("VSERPORT_CHANGE"));
    }
    // The forwards' ports and `cont` in one round trip: both are sent at
    // once, in this order (each is queued when its operation starts, and
    // `all` starts them in order), and QEMU answers one connection's
    // commands in order. The ports are bound before the guest runs. The
    // record is complete with them: it is written while QEMU runs `cont`,
    // not after, when the guest's vCPU competes for the CPU (0.5 ms, at
    // times 20, under TCG). A start that fails from here removes it.
    auto read_ports = [&]() -> asio::awaitable<void> {
        if (!plan.ports.empty()) {
            auto text = co_await client.human_monitor_command("info usernet", within_start());
            auto bound = parse_usernet_ports(text, plan.ports);
            if (!bound)
                throw_error(errc::protocol_error, "QEMU's info usernet lacks a forward:\n" + text);
            for (std::size_t i = 0; i < bound->size(); ++i)
                s.ports[i].host_port = (*bound)[i];
        }
        write_state(s);
    };
    auto cont = client.execute("cont", {}, within_start());
    co_await localvm::detail::all(read_ports(), std::move(cont));
    // A `cont` that succeeded runs the guest, except during an incoming
    // migration, where it only makes the guest run once that ends (QMP's
    // `cont`). Only a restore asks: once the guest runs, a command waits
    // for the lock its vCPU holds (2-5 ms per start under TCG).
    if (plan.incoming) {
        auto status = co_await client.execute("query-status", {}, within_start());
        const auto* o = status.if_object();
        const auto* running = o ? o->if_contains("running") : nullptr;
        if (!running || !running->is_bool() || !running->get_bool()) {
            const auto* word = o ? o->if_contains("status") : nullptr;
            throw_error(errc::process_failed,
                        "QEMU did not run after cont (status " +
                            (word && word->is_string() ? std::string(word->get_string()) : "?") +
                            ")");
        }
    }
    stage(boot_stage::guest_running, std::string(to_string(plan.accel)));
    if (port_events)
        // Set by the caller (`set_clock`): right away, or while it waits for SSH.
        clock.emplace(std::move(client), std::move(*port_events), plan.agent_socket.string(),
                      std::min(remaining(), restore_port_timeout),
                      std::min(remaining(), restore_clock_timeout));
    else
        client.close();

    if (watch == boot_watch::kvm_watchdog) {
        auto abort = [pid]() -> asio::awaitable<std::string> {
            co_await process::wait_exit(pid, no_deadline);
            co_return "QEMU exited";
        };
        console::wait_options wo;
        wo.start_offset = 0;
        try {
            co_await console::wait_for_console(files.console_log,
                                               console::text_matcher(std::string()), // any output
                                               opts.kvm_watchdog, abort, wo);
        } catch (const localvm::error& e) {
            if (e.code() == errc::timeout)
                co_return bring_up_end::silent; // KVM hangs
            if (e.code() == errc::guest_died)
                throw_error(errc::process_failed, exited("while booting"));
            throw;
        }
    }
    co_return bring_up_end::running;
}

asio::awaitable<void> manager::impl::set_clock(detail::pending_clock clock) {
    // Never fails the start: a guest without an agent keeps the save's time.
    auto outcome = co_await detail::set_clock_after_restore(
        clock.port_events, clock.agent_socket, clock.port_timeout, clock.agent_timeout);
    clock.client.close();
    say("guest clock " + outcome.detail);
    stage(boot_stage::guest_clock, outcome.detail);
}

} // namespace localvm::qemu
