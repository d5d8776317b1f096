// Sans-io core of the SSH readiness probe: events in, the next action out.
// No sockets, no clock reads, no exceptions: the driver (probe.cpp) or a unit
// test feeds events with the time at which they happened.
#pragma once

#include <localvm/error.hpp>
#include <localvm/ssh/probe.hpp>

#include "detail/backoff.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace localvm::ssh::detail {

using probe_clock = std::chrono::steady_clock;

/// What happened since the last action.
enum class probe_event_kind {
    start,          ///< First call: begin probing.
    connected,      ///< The connect action succeeded.
    connect_failed, ///< The connect action failed; `text` holds the reason.
    data,           ///< The read action returned `data` (never empty).
    closed,         ///< The read action hit EOF (`text` empty) or an error (`text`).
    io_timeout,     ///< The connect or read action's timeout passed.
    waited,         ///< The wait action's time passed.
};

struct probe_event {
    probe_event_kind kind = probe_event_kind::start;
    std::string_view data; ///< For `data`.
    std::string_view text; ///< For `connect_failed` and `closed`.
};

/// What the driver must do next. `connect`, `wait`, `done` and `fail` imply
/// closing the current connection first (if any).
enum class probe_action_kind {
    connect, ///< Open a new connection; give up after `timeout`.
    read,    ///< Read some bytes from the connection; give up after `timeout`.
    wait,    ///< Sleep for `timeout`.
    done,    ///< Finished: `probe_machine::banner()` holds the line.
    fail,    ///< Finished: `probe_machine::error()` and `diagnostic()` say why.
};

struct probe_action {
    probe_action_kind kind = probe_action_kind::fail;
    probe_clock::duration timeout{};
};

class probe_machine {
public:
    /// The longest line accepted, line end included (RFC 4253 §4.2).
    static constexpr std::size_t max_line = 255;

    /// `endpoint` ("host:port") only appears in diagnostics.
    probe_machine(std::string endpoint, const probe_options& opts);

    /// Feeds one event that happened at `now`; returns the next action.
    /// After `done` or `fail`, further events return the same outcome.
    probe_action resume(const probe_event& ev, probe_clock::time_point now);

    const std::string& banner() const noexcept { return banner_; }
    errc error() const noexcept { return error_; }
    const std::string& diagnostic() const noexcept { return diagnostic_; }
    /// Why the latest attempt failed; empty before the first failure.
    const std::string& last_failure() const noexcept { return last_failure_; }
    int attempts() const noexcept { return attempts_; }

private:
    enum class state { idle, connecting, reading, waiting, done, failed };

    probe_action begin_attempt(probe_clock::time_point now);
    probe_action read_more(probe_clock::time_point now);
    probe_action attempt_failed(std::string why, probe_clock::time_point now);
    probe_action fail(errc code, std::string diagnostic);
    probe_action finished() const;
    // Consumes bytes; true when a banner line completed or the attempt failed
    // (line too long), with `overlong_` telling which.
    bool consume(std::string_view bytes);

    std::string endpoint_;
    probe_options opts_;
    state state_ = state::idle;
    probe_clock::time_point deadline_{};
    probe_clock::time_point attempt_start_{};
    probe_clock::time_point attempt_deadline_{};
    localvm::detail::backoff pause_; // retry_interval doubling up to max_retry_interval
    std::string line_;
    std::size_t attempt_bytes_ = 0;
    bool overlong_ = false;
    int attempts_ = 0;
    std::string banner_;
    errc error_ = errc::ssh_unreachable;
    std::string diagnostic_;
    std::string last_failure_;
};

} // namespace localvm::ssh::detail
