// Internal: an inotify instance on the io_context, for waiting until
// something in the file system changes (a file appears, goes, grows)
// instead of polling for it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>

namespace localvm::sys {

/// One inotify instance and its watches. Events are not parsed: they only
/// wake the waiter, who looks at the file system again (so a batch that
/// overflowed the kernel's queue loses nothing). Move-only.
class inotify {
public:
    /// A new instance (non-blocking, close-on-exec) with no watch yet.
    /// Throws `errc::io_error` ("inotify_init1: <why>").
    explicit inotify(const boost::asio::any_io_executor& ex);

    /// Watches `path` (a directory: what happens in it; a file: that file,
    /// through a symbolic link) for the events in `mask` (IN_CREATE, ...).
    /// Watching the same path again replaces its mask. Returns false with
    /// errno set when it cannot (ENOENT: nothing there yet): whether that
    /// is an error is the caller's call. Never throws.
    bool watch(const std::filesystem::path& path, std::uint32_t mask) noexcept;

    /// Waits for the next events on any watch and discards them. Throws
    /// `errc::io_error` when reading them fails. Cancellation: completes
    /// with operation_aborted.
    boost::asio::awaitable<void> wait();

    /// Waits until `done()` returns true: it is called at once, then after
    /// each batch of events (add the watches that make it change first, so
    /// that a change in between is not missed). Returns true, or `done()`'s
    /// value once `deadline` has passed. Throws as `wait`; cancellation: as
    /// `wait`.
    boost::asio::awaitable<bool> wait_until(std::function<bool()> done,
                                            std::chrono::steady_clock::time_point deadline);

private:
    boost::asio::posix::stream_descriptor fd_;
    alignas(8) std::array<char, 4096> events_{};
};

} // namespace localvm::sys
