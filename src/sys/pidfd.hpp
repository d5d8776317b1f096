// Internal: Linux pidfds (5.3+), the one way localvm signals and waits on a
// process it did not just fork: a pidfd names one process for good, never a
// later one that reused its pid.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>

#include "sys/fd.hpp"
#include <sys/types.h>

namespace localvm::sys {

/// pidfd_open(pid, 0): a close-on-exec pidfd for `pid`, or an empty
/// `unique_fd` with errno set: ESRCH when no such process exists (a reaped
/// child included; an exited but unreaped one, a zombie, still has a pid
/// and gets a pidfd), ENOSYS before Linux 5.3, EINVAL for pid <= 0.
/// Async-signal-safe.
unique_fd pidfd_open(pid_t pid) noexcept;

/// pidfd_send_signal(pidfd, sig): true when sent, false with errno set
/// (ESRCH once the process has been reaped). Async-signal-safe.
bool pidfd_send_signal(int pidfd, int sig) noexcept;

/// True once the process has exited (the pidfd is readable; it may still
/// be its parent's zombie). Does not block. Async-signal-safe.
bool pidfd_exited(int pidfd) noexcept;

/// Waits on the current executor, without blocking it, until the process
/// of `pidfd` has exited: true, or false when `timeout` passes first (a
/// negative one just checks; `no_deadline` waits without limit). No polling: the kernel makes the pidfd readable.
/// `pidfd` stays the caller's and must stay open until this completes.
/// Throws `errc::io_error` when the pidfd cannot be duplicated.
/// Cancellation: completes with operation_aborted.
boost::asio::awaitable<bool> pidfd_wait(int pidfd, std::chrono::milliseconds timeout);

} // namespace localvm::sys
