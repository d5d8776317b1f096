// Internal: the pidfd system calls alone, without asio (pidfd.hpp adds the
// awaitable wait): localvm's helper programs use these and link no Boost.
#pragma once

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

} // namespace localvm::sys
