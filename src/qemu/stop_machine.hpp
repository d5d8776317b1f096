// Sans-io core of `stop`: the escalation power button (pressed again every
// few seconds) -> the guest agent's guest-shutdown (when the button was
// ignored) -> QMP quit -> SIGTERM -> SIGKILL as a state machine. Events
// in, the next action out; no sockets, no clock reads, no exceptions: the
// driver (manager::stop) or a unit test feeds events with their time.
#pragma once

#include <localvm/qemu/options.hpp>
#include <localvm/qemu/state.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include <sys/types.h>

namespace localvm::qemu::detail {

using stop_clock = std::chrono::steady_clock;

/// What happened since the last action.
enum class stop_event_kind {
    start,          ///< First call: begin stopping.
    connected,      ///< The connect action succeeded.
    connect_failed, ///< The connect action failed; `text` says why.
    replied,        ///< The powerdown, agent_shutdown or quit action got its reply.
    command_failed, ///< The powerdown, agent_shutdown or quit action failed or timed out; `text` says why.
    exited,         ///< QEMU has exited (seen at any time).
    waited,         ///< The wait (or signal) action's time passed; QEMU still runs.
};

struct stop_event {
    stop_event_kind kind = stop_event_kind::start;
    std::string_view text; ///< For `connect_failed` and `command_failed`.
};

/// What the driver must do next; `message` (may be empty) is a line for the
/// user, said before the action.
enum class stop_action_kind {
    connect,   ///< Connect to QMP within `timeout`.
    powerdown, ///< Send `system_powerdown`; its reply within `timeout`.
    /// Connect to the guest agent and send `guest-shutdown`; its acceptance
    /// within `timeout`.
    agent_shutdown,
    quit,      ///< Send `quit`; its reply within `timeout`.
    signal,    ///< Send `signal` to QEMU (its pidfd), then wait as `wait`.
    wait,      ///< Wait up to `timeout` for QEMU to exit.
    done,      ///< QEMU is gone; `stop_machine::ended_by()` says which step ended it.
    fail,      ///< QEMU outlived SIGKILL; `stop_machine::diagnostic()` says so.
};

struct stop_action {
    stop_action_kind kind = stop_action_kind::fail;
    stop_clock::duration timeout{};
    int signal = 0;
    std::string message;
};

class stop_machine {
public:
    /// How long connecting to QMP may take before stop turns to signals.
    static constexpr std::chrono::milliseconds connect_timeout{5000};
    /// How long the guest agent may take to accept `guest-shutdown`
    /// (connect, resync, request): an agent that runs answers in
    /// milliseconds, and a guest without one must not hold stop up long.
    static constexpr std::chrono::milliseconds agent_call_timeout{3000};

    /// `pid` only appears in messages.
    stop_machine(pid_t pid, const stop_options& opts);

    /// Feeds one event that happened at `now`; returns the next action.
    /// After `done` or `fail`, further events return the same outcome.
    stop_action resume(const stop_event& ev, stop_clock::time_point now);

    stop_step ended_by() const noexcept { return step_; } ///< The step at `done`.
    const std::string& diagnostic() const noexcept { return diagnostic_; }
    int presses() const noexcept { return presses_; } ///< Power button presses sent.
    /// From `start` to `done`, for the closing message.
    stop_clock::duration elapsed(stop_clock::time_point now) const noexcept {
        return now - started_;
    }

private:
    enum class state {
        idle,
        connecting,
        pressing,
        powering_down,
        asking_agent,
        agent_waiting,
        quitting,
        quit_waiting,
        terminating,
        killing,
        done,
        failed
    };

    stop_action press(stop_clock::time_point now, std::string message);
    stop_action wait_power_off(stop_clock::time_point now);
    stop_action power_off_missed(stop_clock::time_point now);
    stop_action quit(stop_clock::time_point now, std::string message);
    stop_action terminate(std::string message);
    stop_action finished() const;

    pid_t pid_;
    stop_options opts_;
    state state_ = state::idle;
    stop_step step_ = stop_step::none;
    stop_clock::time_point started_{};
    stop_clock::time_point powerdown_deadline_{};
    stop_clock::time_point next_press_{};
    stop_clock::time_point agent_deadline_{};
    stop_clock::time_point quit_deadline_{};
    int presses_ = 0;
    std::string diagnostic_;
};

} // namespace localvm::qemu::detail
