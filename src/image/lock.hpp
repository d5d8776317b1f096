// The per-entry lock of the image cache: one process fetches a URL, the
// others wait for it without polling. Internal to the image layer.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "sys/fd.hpp"

namespace localvm::image::detail {

/// Opens (creating, mode 0600) the lock file at `path` for `flock`, never
/// through a symbolic link and never anything but a regular file
/// (`errc::unsupported`); `errc::io_error` when it cannot.
sys::unique_fd open_lock_file(const std::filesystem::path& path);

/// flock() on CACHE/by-url-sha256/KEY/lock, held for a whole fetch.
/// Waiters sleep on inotify: the holder's descriptor is opened for writing,
/// so its close (release, exit or crash) is an IN_CLOSE_WRITE event on the
/// file; they also wake when it is deleted (`remove_cached`).
class entry_lock {
public:
    entry_lock(entry_lock&&) noexcept = default;
    entry_lock& operator=(entry_lock&&) = delete;

    /// Takes the lock at `path`, waiting at most until `deadline`
    /// (`errc::timeout` naming `what`). `on_wait` (optional) is called once
    /// when the lock is found held by someone else. Anything but a regular
    /// file at `path` is `errc::unsupported`; open or lock failures are
    /// `errc::io_error`. Cancellation while waiting completes with
    /// operation_aborted, holding nothing.
    static boost::asio::awaitable<entry_lock>
    acquire(std::filesystem::path path, std::chrono::steady_clock::time_point deadline,
            std::string what, std::function<void()> on_wait = {});

private:
    explicit entry_lock(sys::unique_fd fd) noexcept
        : fd_(std::move(fd)) {}
    // Its close releases the flock and wakes the waiters (IN_CLOSE_WRITE).
    sys::unique_fd fd_;
};

} // namespace localvm::image::detail
