// Sans-io core of the SSH readiness probe: events in, the next action out.
// No sockets, no clock reads, no exceptions: the driver (probe.cpp) or a unit
// test feeds events with the time at which they happened.
//
// Two phases (probe.hpp says why). Until the guest answered, attempts
// overlap: a fresh connection is started every `attempt_interval` even though
// earlier ones are still open (silent), up to `max_open_attempts`, the oldest
// making room; the first banner on any of them wins. Why: under QEMU's
// user-mode networking a connection accepted while the guest's network is not
// up waits on slirp's SYN retransmission to the guest, which backs off (1 s,
// 2 s, ...); a fresh connection sends a fresh SYN at once. Once a peer closed,
// reset or sent bytes (or `network_up`), nothing is replaced: a fresh
// connection starts only when none is open, each runs to its own patience,
// which doubles after a silent one up to `max_attempt_timeout`.
#pragma once

#include <localvm/error.hpp>
#include <localvm/ssh/probe.hpp>

#include "detail/backoff.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::ssh::detail {

using probe_clock = std::chrono::steady_clock;

/// What happened since the last action.
enum class probe_event_kind {
    start,          ///< First call: begin probing.
    issued,         ///< The driver started the last connect/read or did the close.
    connected,      ///< Connection `id`'s connect succeeded.
    connect_failed, ///< Connection `id`'s connect failed; `text` holds the reason.
    data,           ///< Connection `id`'s read returned `data` (never empty).
    closed,         ///< Connection `id`'s read hit EOF (`text` empty) or an error (`text`).
    tick,           ///< The wait action's `until` passed with no other event.
};

struct probe_event {
    probe_event_kind kind = probe_event_kind::start;
    std::uint32_t id = 0;  ///< The connection, for connected .. closed.
    std::string_view data; ///< For `data`.
    std::string_view text; ///< For `connect_failed` and `closed`.
};

/// What the driver must do next. connect/read/close are started (not
/// awaited) and answered with `issued`; the completions of what was started
/// are fed later, one per resume, while the machine says `wait`.
enum class probe_action_kind {
    connect, ///< Open connection `id` and start connecting it.
    read,    ///< Start reading some bytes from connection `id`.
    close,   ///< Close connection `id`; drop any completion still due from it.
    wait,    ///< Feed the next completion, or `tick` once `until` has passed.
    done,    ///< Finished: `banner()` holds the line. Close every connection.
    fail,    ///< Finished: `error()` and `diagnostic()` say why. Close every connection.
};

struct probe_action {
    probe_action_kind kind = probe_action_kind::fail;
    std::uint32_t id = 0;            ///< For connect, read, close.
    probe_clock::time_point until{}; ///< For wait.
};

class probe_machine {
public:
    /// The longest line accepted, line end included (RFC 4253 §4.2).
    static constexpr std::size_t max_line = 255;

    /// `endpoint` ("host:port") only appears in diagnostics.
    probe_machine(std::string endpoint, const probe_options& opts);

    /// Feeds one event that happened at `now`; returns the next action.
    /// After `done` or `fail`, further events return the same outcome. An
    /// event the last action does not allow (a driver bug) fails with
    /// `errc::invalid_argument`.
    probe_action resume(const probe_event& ev, probe_clock::time_point now);

    const std::string& banner() const noexcept { return banner_; }
    errc error() const noexcept { return error_; }
    const std::string& diagnostic() const noexcept { return diagnostic_; }
    /// Why the latest failed attempt failed; empty before the first failure.
    const std::string& last_failure() const noexcept { return last_failure_; }
    /// Connections started so far.
    int attempts() const noexcept { return attempts_; }
    /// Connections open now (connecting or connected).
    std::size_t open() const noexcept { return open_.size(); }
    /// Whether the guest answered (or `network_up` said so): the second phase.
    bool answered() const noexcept { return answered_; }

private:
    enum class phase {
        connecting, ///< A connect is in flight.
        to_read,    ///< Connected (or data consumed): a read must be started.
        reading,    ///< A read is in flight.
        to_close,   ///< Failed: the driver must close it.
    };
    struct attempt {
        std::uint32_t id = 0;
        phase ph = phase::connecting;
        probe_clock::time_point begun{};
        probe_clock::time_point deadline{}; // of the connect, then of the banner
        probe_clock::duration patience{};   // from the connect to the banner
        std::string line;
        std::size_t bytes = 0;
    };
    enum class state { idle, issuing, waiting, done, failed };

    probe_action next(probe_clock::time_point now);
    probe_action on_io(const probe_event& ev, probe_clock::time_point now);
    attempt* find(std::uint32_t id, phase expected);
    void attempt_failed(attempt& a, std::string why, probe_clock::time_point now);
    probe_action fail(errc code, std::string diagnostic);
    probe_action finished() const;
    // Consumes bytes of `a`; 1: a banner line completed, -1: a line too long,
    // 0: more is needed.
    int consume(attempt& a, std::string_view bytes);

    std::string endpoint_;
    probe_options opts_;
    state state_ = state::idle;
    probe_clock::time_point deadline_{};
    probe_clock::time_point next_attempt_{};
    localvm::detail::backoff pause_; // retry_interval doubling up to max_retry_interval
    std::vector<attempt> open_;      // oldest first
    bool answered_ = false;
    probe_clock::duration patience_{}; // of the next attempt
    std::uint32_t next_id_ = 1;
    int attempts_ = 0;
    std::string banner_;
    errc error_ = errc::ssh_unreachable;
    std::string diagnostic_;
    std::string last_failure_;
};

} // namespace localvm::ssh::detail
