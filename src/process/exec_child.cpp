#include "exec_child.hpp"

#include "sys/fd.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>

#include <fcntl.h>
#include <linux/close_range.h>
#include <unistd.h>

namespace localvm::process::detail {

void write_report(int fd, const exec_report& r) noexcept {
    sys::write_all(fd, &r, sizeof r); // a failure leaves the parent nothing to read: it says so
}

bool install_stdio(int fds[3]) noexcept {
    // A source that already sits on 0..2 could be overwritten by an earlier
    // dup2: move such sources above 2 first.
    for (int i = 0; i < 3; ++i) {
        if (fds[i] >= 0 && fds[i] < 3 && fds[i] != i) {
            int moved = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0)
                return false;
            fds[i] = moved;
        }
    }
    for (int i = 0; i < 3; ++i) {
        if (fds[i] < 0)
            continue;
        if (fds[i] == i) {
            if (::fcntl(i, F_SETFD, 0) < 0)
                return false;
        } else if (::dup2(fds[i], i) < 0) {
            return false;
        }
    }
    return true;
}

namespace {

// Marks [first, last] close-on-exec.
void cloexec_range(unsigned first, unsigned last) noexcept {
    if (first > last)
        return;
    // CLOSE_RANGE_CLOEXEC (Linux 5.11) keeps the report pipe usable until exec.
    if (::close_range(first, last, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    const long max = ::sysconf(_SC_OPEN_MAX);
    const unsigned end = std::min(last, max > 0 ? static_cast<unsigned>(max - 1) : 1023u);
    for (unsigned fd = first; fd <= end; ++fd)
        ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
}

} // namespace

void close_fds_on_exec() noexcept {
    cloexec_range(3, ~0U);
}

void close_fds_on_exec(const int* keep, std::size_t n) noexcept {
    unsigned next = 3;
    for (std::size_t i = 0; i < n; ++i) {
        if (keep[i] < static_cast<int>(next))
            continue; // 0..2, or a duplicate
        cloexec_range(next, static_cast<unsigned>(keep[i]) - 1);
        next = static_cast<unsigned>(keep[i]) + 1;
    }
    cloexec_range(next, ~0U);
}

void exec_or_report(const char* path, char* const* argv, char* const* envp, const char* cwd,
                    int report_fd, int keep_fd) noexcept {
    if (cwd && ::chdir(cwd) != 0) {
        write_report(report_fd, {'E', static_cast<int>(exec_stage::chdir), errno});
        return;
    }
    close_fds_on_exec(&keep_fd, 1); // -1 keeps nothing
    ::execve(path, argv, envp);
    write_report(report_fd, {'E', static_cast<int>(exec_stage::exec), errno});
}

} // namespace localvm::process::detail
