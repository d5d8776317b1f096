// Stop: the coroutine that drives the sans-io stop_machine (powerdown ->
// quit -> SIGTERM -> SIGKILL) with QMP and one pidfd, then records how
// QEMU ended and cleans the runtime directory.
#include "agent_calls.hpp"
#include "guest_ssh.hpp"
#include "manager_impl.hpp"
#include "stop_machine.hpp"
#include "watch.hpp"

#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qmp/client.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace localvm::qemu {
namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

// For stop's closing line (not the word "quit" unless quit ended it: the
// tests read the log for it).
std::string_view stop_step_words(stop_step step) {
    switch (step) {
    case stop_step::powerdown: return "the ACPI power button";
    case stop_step::agent: return "the guest agent (guest-shutdown)";
    case stop_step::quit: return "QMP quit";
    case stop_step::sigterm: return "SIGTERM";
    case stop_step::sigkill: return "SIGKILL";
    case stop_step::none: break;
    }
    return "itself (QEMU ended before stop acted)";
}

} // namespace

asio::awaitable<void> manager::impl::stop(pid_t pid) {
    // Best effort: a full (ENOSPC) or read-only runtime filesystem must not
    // keep the VM from powering off. The failure is said, not thrown.
    auto best_effort = [this](const char* what, auto&& write) {
        try {
            write();
        } catch (const std::exception& e) {
            say(std::string("cannot record ") + what + " (" + e.what() + "); stopping anyway");
        }
    };
    auto s = read_state().value_or(vm_state{});
    s.pid = pid;
    s.stopping = true;
    best_effort("the stop", [&] { write_state(s); });
    // The ssh control master first, while its connection still works: it
    // says goodbye to the guest's sshd and goes (see end_guest_master).
    auto say_line = [this](const std::string& l) { say(l); };
    co_await detail::end_guest_master(files, say_line);

    // One pidfd from here on: every signal and wait reaches this QEMU, never
    // a process that got its pid later.
    auto proc = process::pidfd::open(pid);
    detail::stop_machine machine(pid, opts.stop);
    std::optional<qmp::client> client;
    std::string failure; // the event text must outlive the resume call
    detail::stop_event ev{detail::stop_event_kind::start, {}};
    for (;;) {
        auto a = machine.resume(ev, std::chrono::steady_clock::now());
        if (!a.message.empty())
            say(a.message);
        // Every rung ends: a zero timeout means "at once", never no_deadline.
        const auto timeout =
            std::max(milliseconds(1), std::chrono::ceil<milliseconds>(a.timeout));
        using k = detail::stop_action_kind;
        ev = {detail::stop_event_kind::waited, {}};
        switch (a.kind) {
        case k::connect:
            try {
                qmp::client_options co;
                co.connect_timeout = timeout;
                client.emplace(co_await qmp::client::connect(files.qmp_socket.string(), co));
                ev.kind = detail::stop_event_kind::connected;
            } catch (const localvm::error& e) {
                failure = e.what();
                ev = {detail::stop_event_kind::connect_failed, failure};
            }
            break;
        case k::powerdown:
        case k::quit:
            try {
                qmp::execute_options eo;
                eo.timeout = timeout;
                const bool quit = a.kind == k::quit;
                try {
                    co_await client->execute(quit ? "quit" : "system_powerdown", {}, eo);
                } catch (const localvm::error& e) {
                    // QEMU may close the socket before its reply to quit reaches us.
                    if (!quit || e.code() != errc::monitor_closed ||
                        client->end() != qmp::connection_end::clean)
                        throw;
                }
                ev.kind = detail::stop_event_kind::replied;
            } catch (const localvm::error& e) {
                failure = e.what();
                ev = {detail::stop_event_kind::command_failed, failure};
            }
            break;
        case k::agent_shutdown:
            try {
                co_await detail::agent_shutdown(files.agent_socket.string(), timeout);
                ev.kind = detail::stop_event_kind::replied;
            } catch (const localvm::error& e) {
                failure = e.what();
                ev = {detail::stop_event_kind::command_failed, failure};
            }
            break;
        case k::signal:
            if (!proc.send_signal(a.signal) && !proc.exited())
                say(std::string("cannot signal QEMU: ") + std::strerror(errno));
            [[fallthrough]];
        case k::wait:
            if (co_await proc.wait_exit(timeout))
                ev.kind = detail::stop_event_kind::exited;
            break;
        case k::done:
        case k::fail:
            break;
        }
        if (a.kind == k::done)
            break;
        if (a.kind == k::fail)
            throw_error(errc::process_failed, machine.diagnostic());
        // A failed connect or command may just mean QEMU is gone already,
        // or on its way out: when QEMU closed the monitor itself (after
        // SHUTDOWN, e.g. the guest powered off as the button was pressed
        // again, or dying), its exit comes a moment after the socket goes,
        // and it is that exit, not the next rung, that ends it.
        const bool monitor_ended_by_qemu =
            client && (client->end() == qmp::connection_end::clean ||
                       client->end() == qmp::connection_end::unexpected);
        if ((ev.kind == detail::stop_event_kind::connect_failed ||
             ev.kind == detail::stop_event_kind::command_failed) &&
            (proc.exited() ||
             (monitor_ended_by_qemu && co_await proc.wait_exit(opts.stop.quit_timeout))))
            ev = {detail::stop_event_kind::exited, {}};
    }
    client.reset();
    const auto took = std::chrono::duration_cast<milliseconds>(
        machine.elapsed(std::chrono::steady_clock::now()));
    co_await detail::wait_for_path(files.exit_status, milliseconds(2000));
    best_effort("how QEMU ended", [&] {
        if (auto settled = settle_state(state_record::in_memory)) {
            settled->stopped_by = machine.ended_by();
            write_state(*settled);
        }
    });
    forward_qemu_log();
    // One a `shell` made meanwhile ends with its connection; this waits for it.
    co_await detail::end_guest_master(files, say_line);
    clean_runtime(runtime_logs::keep);
    say("stopped by " + std::string(stop_step_words(machine.ended_by())) + " after " +
        std::to_string(took.count()) + " ms");
}

} // namespace localvm::qemu
