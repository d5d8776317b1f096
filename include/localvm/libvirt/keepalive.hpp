// libvirt's keepalive decision, without I/O or clock: when to PING and when
// to give a silent peer up.
#pragma once

#include <chrono>

namespace localvm::libvirt {

/// Keepalive settings (libvirt's `keepalive_interval`/`keepalive_count`).
struct keepalive_options {
    /// Silence after which a PING is sent, and between further PINGs.
    /// Default 5 s (libvirt's default); zero disables keepalive.
    std::chrono::milliseconds interval = std::chrono::seconds(5);
    /// PINGs sent without hearing anything back before the peer counts as
    /// dead. Default 5: a peer silent for interval * (count + 1) is dead.
    unsigned count = 5;
};

/// The keepalive machine of one connection. Feed it every message received
/// (`on_received`); ask it what to do (`next`) when it said to wake up.
/// Time is passed in, never read: it is unit tested with a fake clock.
class keepalive {
public:
    using time_point = std::chrono::steady_clock::time_point;

    /// What to do now.
    enum class verdict {
        wait,      ///< Nothing until `action::at` (or a message arrives).
        send_ping, ///< Send a PING now, then ask again.
        dead,      ///< The peer has been silent too long: end the connection.
        disabled,  ///< Keepalive is off: never ask again.
    };
    struct action {
        keepalive::verdict verdict = verdict::wait;
        time_point at{}; ///< With `wait`: when to ask again.
    };

    /// A machine whose silence is counted from `now`.
    keepalive(keepalive_options options, time_point now) noexcept;

    /// Anything arrived from the peer at `now`: it is alive.
    void on_received(time_point now) noexcept;

    /// The decision at `now`. After `send_ping` the caller sends one PING
    /// (and asks again later); `dead` is final.
    action next(time_point now) noexcept;

    /// PINGs sent since the peer was last heard.
    unsigned unanswered() const noexcept { return sent_; }

private:
    keepalive_options options_;
    time_point last_heard_;
    unsigned sent_ = 0;
    bool dead_ = false;
};

} // namespace localvm::libvirt
