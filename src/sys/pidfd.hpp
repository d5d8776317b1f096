// Internal: Linux pidfds (5.3+), the one way localvm signals and waits on a
// process it did not just fork: a pidfd names one process for good, never a
// later one that reused its pid.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>

#include "sys/pidfd_calls.hpp"

namespace localvm::sys {

/// Waits on the current executor, without blocking it, until the process
/// of `pidfd` has exited: true, or false when `timeout` passes first (a
/// negative one just checks; `no_deadline`, zero, waits without limit).
/// No polling: the kernel makes the pidfd readable.
/// `pidfd` stays the caller's and must stay open until this completes.
/// Throws `errc::io_error` when the pidfd cannot be duplicated.
/// Cancellation: completes with operation_aborted.
boost::asio::awaitable<bool> pidfd_wait(int pidfd, std::chrono::milliseconds timeout);

} // namespace localvm::sys
