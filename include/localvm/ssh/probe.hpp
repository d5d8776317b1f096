// SSH readiness: wait until a port answers with an SSH identification line.
#pragma once

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
struct probe_options {
    /// Deadline for the TCP connect of one attempt. Default 1 s (on loopback
    /// a connect succeeds or is refused at once).
    std::chrono::milliseconds connect_timeout{1000};
    /// How long one attempt may take from its connect until the banner line
    /// is complete. A connection that is accepted but silent is read until
    /// then, so a banner that arrives later on it is seen at once. Default 3 s.
    std::chrono::milliseconds attempt_timeout{3000};
    /// Pause after the first failed attempt; it doubles after each further
    /// failure up to `max_retry_interval`. Default 10 ms: a refused or closed
    /// loopback connection costs well under a millisecond on both sides.
    std::chrono::milliseconds retry_interval{10};
    /// Cap of the pause between attempts. Default 30 ms, which keeps the mean
    /// detection delay for a guest that resets connections near 15 ms (about
    /// 33 connects a second while it boots).
    std::chrono::milliseconds max_retry_interval{30};
    /// Overall deadline of `wait_for_banner`. Default 120 s.
    std::chrono::milliseconds timeout{120000};
};

/// Produces an awaitable that completes when waiting is pointless (e.g. QEMU
/// exited), returning a diagnostic (e.g. the tail of the serial console). It
/// is started once per call and cancelled (asio cancellation) when the call
/// ends for another reason, so it must honour cancellation promptly.
using abort_hook = std::function<boost::asio::awaitable<std::string>()>;

/// Connects to `host:port` repeatedly until a peer sends an SSH
/// identification line (a line starting with "SSH-"; other lines before it
/// are skipped; lines end with LF or CRLF and are at most 255 bytes
/// including the line end) and returns that line without its line end, e.g.
/// "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3". `host` is an IP address or a
/// name resolved once. Each connection is closed before returning.
///
/// `abort`, when set, is raced against the whole wait: if it completes
/// first, the probe stops at once and `errc::guest_died` is thrown with the
/// hook's diagnostic.
///
/// Throws `localvm::error`: `errc::ssh_unreachable` when `opts.timeout`
/// passes, naming host:port, the number of attempts and the last failure
/// (connection refused, closed before the banner, no banner within N ms);
/// `errc::guest_died` as above; `errc::invalid_argument` for a non-positive
/// duration, port 0 or a host that does not resolve. An exception thrown by
/// `abort` propagates. Cancellation closes the connection, cancels `abort`
/// and completes with `boost::asio::error::operation_aborted`.
boost::asio::awaitable<std::string> wait_for_banner(std::string host, std::uint16_t port,
                                                    probe_options opts = probe_options(),
                                                    abort_hook abort = {});

} // namespace localvm::ssh
