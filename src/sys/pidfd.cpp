// The system calls only (no asio code): localvm's helper programs link this
// object alone. The awaitable wait is in pidfd_wait.cpp.
#include "sys/pidfd_calls.hpp"

#include <cerrno>

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace localvm::sys {

unique_fd pidfd_open(pid_t pid) noexcept {
    if (pid <= 0) {
        errno = EINVAL;
        return unique_fd();
    }
    // pidfds are close-on-exec from the start (the kernel sets O_CLOEXEC).
    return unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

bool pidfd_send_signal(int pidfd, int sig) noexcept {
    return ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
}

bool pidfd_exited(int pidfd) noexcept {
    pollfd pfd{pidfd, POLLIN, 0};
    int r;
    while ((r = ::poll(&pfd, 1, 0)) < 0 && errno == EINTR) {
    }
    return r > 0;
}

} // namespace localvm::sys
