#include "sys/fd.hpp"

#include <cerrno>

#include <unistd.h>

namespace localvm::sys {

void unique_fd::reset(int fd) noexcept {
    if (fd_ >= 0 && fd_ != fd)
        ::close(fd_);
    fd_ = fd < 0 ? -1 : fd;
}

std::size_t write_all(int fd, const void* data, std::size_t n) noexcept {
    const char* p = static_cast<const char*>(data);
    std::size_t done = 0;
    while (done < n) {
        ssize_t w = ::write(fd, p + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (w == 0) {
            errno = EIO;
            break;
        }
        done += static_cast<std::size_t>(w);
    }
    return done;
}

std::size_t read_full(int fd, void* data, std::size_t n) noexcept {
    char* p = static_cast<char*>(data);
    std::size_t done = 0;
    while (done < n) {
        ssize_t r = ::read(fd, p + done, n - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (r == 0) {
            errno = 0;
            break;
        }
        done += static_cast<std::size_t>(r);
    }
    return done;
}

} // namespace localvm::sys
