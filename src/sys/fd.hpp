// Internal: owning a file descriptor, and writing or reading all of a
// buffer through one.
#pragma once

#include <cstddef>
#include <utility>

namespace localvm::sys {

/// Owns one file descriptor (or none, -1) and closes it on destruction.
/// Move-only. Its members are async-signal-safe (usable between fork and
/// exec): they only call close(2).
class unique_fd {
public:
    unique_fd() noexcept = default;
    /// Takes `fd` (-1 or any negative value: none).
    explicit unique_fd(int fd) noexcept
        : fd_(fd < 0 ? -1 : fd) {}
    unique_fd(unique_fd&& other) noexcept
        : fd_(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other)
            reset(other.release());
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    /// The descriptor, or -1; still owned.
    int get() const noexcept { return fd_; }
    /// True when it holds a descriptor.
    explicit operator bool() const noexcept { return fd_ >= 0; }
    /// Gives the descriptor up without closing it; -1 when none.
    int release() noexcept { return std::exchange(fd_, -1); }
    /// Closes the descriptor held (if any), then takes `fd`. The close's
    /// result is ignored: Linux frees the descriptor even when close fails.
    void reset(int fd = -1) noexcept;

private:
    int fd_ = -1;
};

/// Writes all `n` bytes at `data` to `fd`, going on after short writes and
/// after writes interrupted by a signal (EINTR). Returns how many bytes were
/// written: `n`, or fewer when a write failed (errno then says why; a write
/// that wrote nothing without an error gives EIO). For a non-blocking `fd`,
/// EAGAIN counts as a failure. Async-signal-safe (no allocation, never
/// throws): usable in a forked child.
std::size_t write_all(int fd, const void* data, std::size_t n) noexcept;

/// Reads into `data` until it holds `n` bytes, going on after short reads
/// and EINTR. Returns how many bytes were read: `n`, or fewer at end of file
/// (errno then 0) or when a read failed (errno says why; EAGAIN for a
/// non-blocking `fd` with nothing to read). Async-signal-safe.
std::size_t read_full(int fd, void* data, std::size_t n) noexcept;

} // namespace localvm::sys
