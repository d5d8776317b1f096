// The copying half of a drained console log (see drain_child.hpp): what the
// supervisor helper runs. Kept to system calls: it must never stall its
// writer, QEMU, for anything but the disk.
#include "drain_child.hpp"

#include "sys/fd.hpp"

#include <cerrno>
#include <cstdio>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm::console::detail {

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

void append(drain_state& s, std::string_view data) {
    while (!data.empty()) {
        auto k = rotation_split(s.size, s.plan.limit, data);
        if (k > 0) {
            s.size += put(s.log_fd, data.data(), k, s.plan);
            data.remove_prefix(k);
        }
        if (data.empty())
            break;
        ::rename(s.plan.log, s.plan.rotated);
        if (s.log_fd >= 0)
            ::close(s.log_fd);
        // -1: this output is lost; the next try is at the next rotation.
        s.log_fd = open_drain_log(s.plan);
        s.size = 0;
    }
}

void close_fd(int& fd) {
    if (fd >= 0)
        ::close(fd);
    fd = -1;
}

} // namespace

void remove_fifo_if_same(const char* fifo, dev_t dev, ino_t ino) noexcept {
    struct stat now {};
    if (fifo && ::stat(fifo, &now) == 0 && now.st_dev == dev && now.st_ino == ino)
        ::unlink(fifo);
}

void drain_begin(drain_state& s) noexcept {
    struct stat st {};
    if (s.in >= 0 && ::fstat(s.in, &st) == 0) {
        s.fifo_dev = st.st_dev;
        s.fifo_ino = st.st_ino;
    }
}

std::size_t drain_once(drain_state& s) noexcept {
    static char buf[64 * 1024]; // the helper's own: no allocation here
    if (s.in < 0)
        return 0;
    ssize_t n;
    do
        n = ::read(s.in, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return 0; // EAGAIN: nothing there (never EOF: we hold a write end)
    append(s, std::string_view(buf, static_cast<std::size_t>(n)));
    return static_cast<std::size_t>(n);
}

void drain_finish(drain_state& s) noexcept {
    // What the writer left in the pipe: at most its capacity (64 KiB, up to
    // 1 MiB when raised). Bounded, should a child of the writer write on.
    for (int i = 0; i < 20 && drain_once(s) > 0; ++i) {
    }
    // The FIFO goes before its read end closes: a `wait_drained` that finds
    // it without a reader (ENXIO) would otherwise return with it still there.
    remove_fifo_if_same(s.plan.fifo, s.fifo_dev, s.fifo_ino);
    close_fd(s.log_fd);
    close_fd(s.in);
    close_fd(s.hold);
}

} // namespace localvm::console::detail
