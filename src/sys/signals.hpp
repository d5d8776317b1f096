// Internal: signal state for a program about to be exec'd.
#pragma once

#include <csignal>

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
        ::sigaction(s, &sa, nullptr); // EINVAL for SIGKILL/SIGSTOP and glibc's own: fine
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

} // namespace localvm::sys
