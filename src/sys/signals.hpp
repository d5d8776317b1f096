// Internal: signal state for a program about to be exec'd.
#pragma once

#include <csignal>

#include <sys/syscall.h>
#include <unistd.h>

namespace localvm::sys {

/// In a forked child (or a helper program at its start): default
/// dispositions for every signal and an empty signal mask, so that the
/// program does not inherit our SIG_IGN for SIGPIPE or a blocked SIGCHLD.
/// Async-signal-safe.
inline void reset_signals() noexcept {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    ::sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; ++s)
        ::sigaction(s, &sa, nullptr); // EINVAL for SIGKILL/SIGSTOP and glibc's own
    // glibc's own (32 and 33, below SIGRTMIN) it refuses to touch, and its
    // posix_spawn leaves them ignored in the child: a program that is not
    // glibc's would inherit that. The kernel's call sets them.
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)();
        unsigned long mask;
    } dfl{SIG_DFL, 0, nullptr, 0};
    for (int s = 32; s < SIGRTMIN; ++s)
        ::syscall(SYS_rt_sigaction, s, &dfl, nullptr, sizeof dfl.mask);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

} // namespace localvm::sys
