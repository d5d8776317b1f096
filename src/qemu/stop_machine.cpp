#include "stop_machine.hpp"

#include <algorithm>
#include <csignal>

namespace localvm::qemu::detail {

namespace {

std::string ms_text(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + " ms";
}

stop_clock::duration at_least_1ms(stop_clock::duration d) {
    return std::max<stop_clock::duration>(d, std::chrono::milliseconds(1));
}

} // namespace

stop_machine::stop_machine(pid_t pid, const stop_options& opts)
    : pid_(pid)
    , opts_(opts) {}

stop_action stop_machine::resume(const stop_event& ev, stop_clock::time_point now) {
    using k = stop_event_kind;
    if (state_ == state::done || state_ == state::failed)
        return finished();
    if (ev.kind == k::exited) {
        if (state_ == state::idle)
            started_ = now;
        state_ = state::done;
        return finished();
    }

    switch (state_) {
    case state::idle:
        if (ev.kind != k::start)
            break;
        started_ = now;
        state_ = state::connecting;
        return {stop_action_kind::connect, connect_timeout, 0, {}};
    case state::connecting:
        if (ev.kind == k::connected) {
            if (opts_.powerdown_timeout.count() <= 0)
                return quit(now, "no time for the ACPI power button (powerdown_timeout 0); quit");
            step_ = stop_step::powerdown;
            powerdown_deadline_ = now + opts_.powerdown_timeout;
            return press(now, "stopping: ACPI power button");
        }
        if (ev.kind == k::connect_failed)
            return terminate("no QMP connection (" + std::string(ev.text) + "); using signals");
        break;
    case state::pressing:
        if (ev.kind == k::replied)
            return wait_power_off(now);
        if (ev.kind == k::command_failed)
            return quit(now, "system_powerdown failed: " + std::string(ev.text));
        break;
    case state::powering_down:
        if (ev.kind != k::waited)
            break;
        if (now >= powerdown_deadline_)
            return power_off_missed(now);
        if (opts_.powerdown_repeat.count() > 0 && now >= next_press_)
            return press(now,
                         "ACPI power button again (the guest may have missed it while booting)");
        return wait_power_off(now);
    case state::asking_agent:
        if (ev.kind == k::replied) {
            state_ = state::agent_waiting;
            agent_deadline_ = now + opts_.agent_timeout;
            return {stop_action_kind::wait, opts_.agent_timeout, 0, {}};
        }
        if (ev.kind == k::command_failed)
            return quit(now, "the guest agent did not take guest-shutdown (" +
                                 std::string(ev.text) + "); quit");
        break;
    case state::agent_waiting:
        if (ev.kind != k::waited)
            break;
        if (now >= agent_deadline_)
            return quit(now, "the guest did not power off within " +
                                 ms_text(opts_.agent_timeout) + " of guest-shutdown; quit");
        // An early wake-up: wait out the rest.
        return {stop_action_kind::wait, agent_deadline_ - now, 0, {}};
    case state::quitting:
        if (ev.kind == k::replied || ev.kind == k::command_failed) {
            state_ = state::quit_waiting;
            stop_action a{stop_action_kind::wait, at_least_1ms(quit_deadline_ - now), 0, {}};
            if (ev.kind == k::command_failed)
                a.message = "quit failed: " + std::string(ev.text);
            return a;
        }
        break;
    case state::quit_waiting:
        if (ev.kind == k::waited)
            return terminate("SIGTERM");
        break;
    case state::terminating:
        if (ev.kind == k::waited) {
            state_ = state::killing;
            step_ = stop_step::sigkill;
            return {stop_action_kind::signal, opts_.kill_timeout, SIGKILL, "SIGKILL"};
        }
        break;
    case state::killing:
        if (ev.kind == k::waited) {
            state_ = state::failed;
            diagnostic_ = "QEMU (pid " + std::to_string(pid_) + ") did not exit after SIGKILL";
            return finished();
        }
        break;
    case state::done:
    case state::failed:
        break;
    }
    // An event the current state does not expect: a driver bug. Say so
    // rather than guess.
    diagnostic_ = "stop: unexpected event " + std::to_string(static_cast<int>(ev.kind)) +
                  " in state " + std::to_string(static_cast<int>(state_));
    state_ = state::failed;
    return finished();
}

stop_action stop_machine::press(stop_clock::time_point now, std::string message) {
    state_ = state::pressing;
    ++presses_;
    next_press_ = now + opts_.powerdown_repeat;
    return {stop_action_kind::powerdown, at_least_1ms(powerdown_deadline_ - now), 0,
            std::move(message)};
}

stop_action stop_machine::wait_power_off(stop_clock::time_point now) {
    state_ = state::powering_down;
    auto until = powerdown_deadline_;
    if (opts_.powerdown_repeat.count() > 0)
        until = std::min(until, next_press_);
    // A reply that came after the window closed still gets a zero-length
    // wait: exited or not, the next event decides.
    return {stop_action_kind::wait, std::max<stop_clock::duration>(until - now, {}), 0, {}};
}

stop_action stop_machine::power_off_missed(stop_clock::time_point now) {
    const auto missed = "the guest did not power off within " + ms_text(opts_.powerdown_timeout);
    if (opts_.agent_timeout.count() <= 0)
        return quit(now, missed + "; quit");
    state_ = state::asking_agent;
    step_ = stop_step::agent;
    return {stop_action_kind::agent_shutdown, agent_call_timeout, 0,
            missed + "; asking the guest agent (guest-shutdown)"};
}

stop_action stop_machine::quit(stop_clock::time_point now, std::string message) {
    state_ = state::quitting;
    step_ = stop_step::quit;
    quit_deadline_ = now + opts_.quit_timeout;
    return {stop_action_kind::quit, opts_.quit_timeout, 0, std::move(message)};
}

stop_action stop_machine::terminate(std::string message) {
    state_ = state::terminating;
    step_ = stop_step::sigterm;
    return {stop_action_kind::signal, opts_.term_timeout, SIGTERM, std::move(message)};
}

stop_action stop_machine::finished() const {
    return {state_ == state::done ? stop_action_kind::done : stop_action_kind::fail, {}, 0, {}};
}

} // namespace localvm::qemu::detail
