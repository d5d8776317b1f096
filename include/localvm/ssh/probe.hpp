// SSH readiness: wait until a port answers with an SSH identification line.
#pragma once

#include <localvm/wait.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace localvm::ssh {

/// Knobs of `wait_for_banner`. Every duration must be positive.
///
/// A TCP connect alone proves nothing: QEMU's `hostfwd` accepts connections
/// while nothing listens in the guest, then closes them (the guest answered
/// with a reset) or leaves them silent (the guest's network is not up yet).
/// The probe therefore reads the identification line (RFC 4253 §4.2).
///
/// The probe works in two phases.
///
/// *Before the guest answered* (no connection has yet been closed by the
/// peer, reset, or sent a byte; a refused connect does not count: under
/// hostfwd that is the host's side): a fresh connection starts every
/// `attempt_interval`; up to `max_open_attempts` earlier silent ones stay
/// open meanwhile (by default none: the fresh one replaces it), and the
/// first banner on any of them wins. A silent connection under user-mode
/// networking waits on slirp's SYN retransmission to the guest, which backs
/// off (1 s, 2 s, ...); a fresh one reaches the guest at once.
///
/// *Once the guest answered* (its network is up, or `network_up` says so):
/// a silent connection is sshd being slow to send its banner, and replacing
/// it would only make sshd start another session (each costs the guest a
/// fork and exec: under TCG on a loaded host, hundreds of milliseconds).
/// So no silent connection is replaced any more: each runs to its timeout,
/// and a fresh one starts only when none is open (after a failure, after
/// `retry_interval`). When one stays silent to its timeout, the next one
/// waits twice as long, up to `max_attempt_timeout`. A probe that replaced
/// silent connections every 500 ms kept a restored cloud guest's sshd at
/// MaxStartups ("22 of 10-100 startups") for good: it never answered.
struct probe_options {
    /// Deadline for the TCP connect of one attempt. Default 1 s (on loopback
    /// a connect succeeds or is refused at once).
    std::chrono::milliseconds connect_timeout{1000};
    /// How long one connection may stay open, from its connect until the
    /// banner line is complete. A connection that is accepted but silent is
    /// read until then (or, before the guest answered, until
    /// `max_open_attempts` needs its place), so a banner that arrives later
    /// on it is seen at once. Default 3 s.
    std::chrono::milliseconds attempt_timeout{3000};
    /// Once the guest answered, each connection that stays silent for its
    /// whole time doubles the next one's, up to this. Default 12 s: a sshd
    /// that needs longer than `attempt_timeout` for its banner (a loaded
    /// host, a guest busy booting) is still seen. A value below
    /// `attempt_timeout` means no growth.
    std::chrono::milliseconds max_attempt_timeout{12000};
    /// Before the guest answered, a fresh connection starts this long after
    /// the previous one started, even though that one is still open.
    /// Default 500 ms. Set it to `attempt_timeout` or more for one
    /// connection at a time.
    std::chrono::milliseconds attempt_interval{500};
    /// How many connections may be open at once (at least 1). Before the
    /// guest answered, when a fresh one is due and this many are open, the
    /// oldest is closed; afterwards no fresh one starts while any is open,
    /// so the guest never sees more than this many at once. Default 1:
    /// with the default interval, a silent connection is replaced by a fresh
    /// one every 500 ms. Measured on the real tiny guest (bench_ready), more
    /// overlapping connections saw the banner sooner but made the following
    /// login 3-5 s slower (dropbear limits unauthenticated connections per
    /// source), so one at a time is the default.
    int max_open_attempts = 1;
    /// Pause before a fresh connection after one failed (refused, closed,
    /// timed out); it doubles after each further failure up to
    /// `max_retry_interval`. Default 10 ms: a refused or closed loopback
    /// connection costs well under a millisecond on both sides.
    std::chrono::milliseconds retry_interval{10};
    /// Cap of that pause. Default 30 ms, which keeps the mean detection delay
    /// for a guest that resets connections near 15 ms (about 33 connects a
    /// second while it boots).
    std::chrono::milliseconds max_retry_interval{30};
    /// Overall deadline of `wait_for_banner`. Default 120 s.
    std::chrono::milliseconds timeout{120000};
    /// The caller knows the guest's network is up (a VM restored from a
    /// snapshot of a running guest): probe as if the guest had answered
    /// already, from the first connection. Default false.
    bool network_up = false;
};

using localvm::abort_hook; ///< See localvm/wait.hpp.

/// Connects to `host:port` repeatedly until a peer sends an SSH
/// identification line (a line starting with "SSH-"; other lines before it
/// are skipped; lines end with LF or CRLF and are at most 255 bytes
/// including the line end) and returns that line without its line end, e.g.
/// "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3". `host` is an IP address or a
/// name resolved once. Several connections may be open at once (see
/// `probe_options`); every one is closed before returning.
///
/// `abort`, when set, is raced against the whole wait: if it completes
/// first, the probe stops at once and `errc::guest_died` is thrown with the
/// hook's diagnostic.
///
/// Throws `localvm::error`: `errc::ssh_unreachable` when `opts.timeout`
/// passes, naming host:port, the number of attempts and the last failure
/// (connection refused, closed before the banner, no banner within N ms);
/// `errc::guest_died` as above; `errc::invalid_argument` for a non-positive
/// duration or `max_open_attempts`, port 0 or a host that does not resolve. An exception thrown by
/// `abort` propagates. Cancellation closes every connection, cancels `abort`
/// and completes with `boost::asio::error::operation_aborted`.
boost::asio::awaitable<std::string> wait_for_banner(std::string host, std::uint16_t port,
                                                    probe_options opts = probe_options(),
                                                    abort_hook abort = {});

} // namespace localvm::ssh
