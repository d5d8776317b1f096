// The per-entry lock of the image cache: one process fetches a URL, the
// others wait for it without polling. Internal to the image layer.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <functional>

namespace localvm::image::detail {

/// flock() on CACHE/by-url-sha256/KEY/lock, held for a whole fetch.
/// Waiters sleep on inotify: the holder's descriptor is opened for writing,
/// so its close (release, exit or crash) is an IN_CLOSE_WRITE event on the
/// file; they also wake when it is deleted (`remove_cached`).
class entry_lock {
public:
    entry_lock(entry_lock&& other) noexcept;
    entry_lock& operator=(entry_lock&&) = delete;
    ~entry_lock();

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
    explicit entry_lock(int fd) noexcept;
    int fd_ = -1;
};

} // namespace localvm::image::detail
