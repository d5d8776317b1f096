// Internal: waiting until something in the file system changes (a file
// appears, goes, grows) instead of polling for it, with inotify on the
// io_context.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

namespace localvm::sys {

struct inotify_registration;

/// A set of inotify watches and a way to wait for their events. Events are
/// not parsed: they only wake the waiter, who looks at the file system
/// again (so a batch that overflowed the kernel's queue loses nothing).
///
/// Every `inotify` on one io_context shares one kernel instance (inotify
/// instances are a small per-user resource, `fs.inotify.max_user_instances`,
/// 128 by default and shared by all of the user's processes: one per waiter
/// made a few hundred concurrent waits fail with EMFILE). One reader runs
/// while anybody waits and wakes the owners of the watches an event names;
/// events that come while their owner does not wait are kept for its next
/// `wait`. Move-only.
class inotify {
public:
    /// A set with no watch yet, on `ex`'s io_context. Throws
    /// `errc::io_error` ("inotify_init1: <why>") when the io_context's
    /// instance cannot be made.
    explicit inotify(const boost::asio::any_io_executor& ex);
    inotify(inotify&&) noexcept;
    inotify& operator=(inotify&&) = delete;
    /// Removes its watches (those nobody else on the io_context holds).
    ~inotify();

    /// Watches `path` (a directory: what happens in it; a file: that file,
    /// through a symbolic link unless `mask` has IN_DONT_FOLLOW) for the
    /// events in `mask` (IN_CREATE, ...). Watching the same path again adds
    /// to its mask. Returns false with errno set when it cannot (ENOENT:
    /// nothing there yet): whether that is an error is the caller's call.
    /// Never throws.
    bool watch(const std::filesystem::path& path, std::uint32_t mask) noexcept;

    /// Waits for the next events on any of its watches (at once when some
    /// came since the last wait) and discards them. Throws `errc::io_error`
    /// when reading them fails. Cancellation: completes with
    /// operation_aborted.
    boost::asio::awaitable<void> wait();

    /// Waits until `done()` returns true: it is called at once, then after
    /// each batch of events (add the watches that make it change first, so
    /// that a change in between is not missed). Returns true, or `done()`'s
    /// value once `deadline` has passed. Throws as `wait`; cancellation: as
    /// `wait`.
    boost::asio::awaitable<bool> wait_until(std::function<bool()> done,
                                            std::chrono::steady_clock::time_point deadline);

private:
    std::unique_ptr<inotify_registration> reg_; // where the shared reader finds us
};

} // namespace localvm::sys
