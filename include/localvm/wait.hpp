// How waits end: the one timeout type, "no deadline", and the abort hook.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace localvm {

/// Every timeout and interval in localvm's interface is a
/// `std::chrono::milliseconds` (`std::chrono::seconds` and `minutes`
/// convert to it implicitly).
///
/// `no_deadline` is the timeout that never passes: a wait given it ends only
/// by success, failure or cancellation. It is zero, and it is the default of
/// every optional timeout (shell, sync, QMP, guest agent and libvirt calls).
/// Waits that must end (start, stop, readiness) have positive defaults.
inline constexpr std::chrono::milliseconds no_deadline{0};

/// Produces an awaitable that completes when waiting is pointless (e.g. QEMU
/// exited), returning a diagnostic (e.g. the tail of the serial console) for
/// the `errc::guest_died` error the wait then throws. The wait starts it once
/// and cancels it (asio cancellation) when it ends for another reason, so it
/// must honour cancellation promptly. An exception thrown by it propagates.
/// Used by `ssh::wait_for_banner`, `ssh::wait_for_login` and
/// `console::wait_for_console`.
using abort_hook = std::function<boost::asio::awaitable<std::string>()>;

} // namespace localvm
