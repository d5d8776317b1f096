// The console drainer (see drain_child.hpp): what runs in the helper
// program localvm-console. Kept to system calls: it must never stall its
// writer, QEMU, for anything but the disk.
#include "drain_child.hpp"

#include "sys/fd.hpp"
#include "sys/signals.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <string_view>

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm::console {

namespace detail {

std::size_t rotation_split(std::uint64_t size, std::uint64_t limit,
                           std::string_view chunk) noexcept {
    if (limit == 0)
        limit = 1;
    std::uint64_t room = size >= limit ? 0 : limit - size;
    if (chunk.size() <= room)
        return chunk.size();
    auto fits = chunk.substr(0, static_cast<std::size_t>(room));
    auto nl = fits.rfind('\n');
    if (nl != std::string_view::npos)
        return nl + 1;
    return size == 0 ? fits.size() : 0; // an empty file takes the cut line
}

int open_drain_log(const drain_plan& p) noexcept {
    return ::open(p.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
}

namespace {

bool same_file(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Writes what it can; a failure drops the rest (never stall the writer).
// Returns the bytes written.
std::uint64_t put(int fd, const char* data, std::size_t n, const drain_plan& p) {
    std::uint64_t done = 0;
    bool made_room = false;
    while (n > 0 && fd >= 0) {
        const std::size_t w = sys::write_all(fd, data, n);
        data += w;
        n -= w;
        done += w;
        if (n > 0 && errno == ENOSPC && !made_room) {
            made_room = true; // the old part goes before the new output does
            ::unlink(p.rotated);
            continue;
        }
        break;
    }
    return done;
}

// Closes every fd from 3 up but those in `keep` (async-signal-safe).
void close_all_but(std::array<int, 4> keep) {
    std::sort(keep.begin(), keep.end());
    int from = 3;
    for (int k : keep) {
        if (k < from)
            continue;
        if (k > from)
            ::close_range(static_cast<unsigned>(from), static_cast<unsigned>(k) - 1, 0);
        from = k + 1;
    }
    ::close_range(static_cast<unsigned>(from), ~0U, 0);
}

} // namespace

void drain(const drain_plan& p, int in, int log_fd, int report_fd, int control) noexcept {
    // Hold nothing of the starter's: its pipes would never see EOF.
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0)
        for (int i = 0; i < 3; ++i)
            ::dup2(null_fd, i);
    close_all_but({in, log_fd, report_fd, control});
    sys::reset_signals();
    if (::chdir("/") != 0) {
    }
    // A starter that gave up before reading the pid has closed the report
    // pipe: the write fails (EPIPE, not SIGPIPE, which would end us before
    // the FIFO is removed), and the closed control socket below says the
    // rest. Nothing here writes to a pipe after this.
    ::signal(SIGPIPE, SIG_IGN);
    pid_t self = ::getpid();
    if (::write(report_fd, &self, sizeof self) != sizeof self) {
    }
    ::close(report_fd);

    struct stat fifo_st {};
    ::fstat(in, &fifo_st);
    static char buf[64 * 1024]; // the child's own copy: no allocation here
    std::uint64_t size = 0;
    int timeout = p.connect_timeout_ms; // until the writer comes
    bool given_up = false;
    for (;;) {
        pollfd pfd[2] = {{in, POLLIN, 0}, {control, POLLIN, 0}};
        int r = ::poll(pfd, control >= 0 ? 2 : 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; // no writer came, or poll failed
        if (control >= 0 && pfd[1].revents != 0) {
            char c = 0;
            ssize_t n = ::read(control, &c, 1);
            if (n < 0 && errno == EINTR)
                continue;
            // 'R': released to the writer. Anything else: the start was
            // given up; copy what is already there, then end.
            given_up = n != 1 || c != 'R';
            ::close(control);
            control = -1;
            if (given_up)
                timeout = 0;
            continue;
        }
        if (!given_up)
            timeout = -1;
        ssize_t n = ::read(in, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break; // the writer closed: QEMU is gone
        std::string_view data(buf, static_cast<std::size_t>(n));
        while (!data.empty()) {
            auto k = rotation_split(size, p.limit, data);
            if (k > 0) {
                size += put(log_fd, data.data(), k, p);
                data.remove_prefix(k);
            }
            if (data.empty())
                break;
            ::rename(p.log, p.rotated);
            if (log_fd >= 0)
                ::close(log_fd);
            log_fd = open_drain_log(p); // -1: this output is lost, the next try is at the next rotation
            size = 0;
        }
    }
    if (log_fd >= 0)
        ::close(log_fd);
    // Done: the FIFO goes (unless a later start made a new one there).
    struct stat now {};
    if (::stat(p.fifo, &now) == 0 && same_file(now, fifo_st))
        ::unlink(p.fifo);
    ::_exit(0);
}


} // namespace detail

} // namespace localvm::console
