// An inter-process lock on one VM that waiters await without polling.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace localvm::qemu::detail {

/// Held while a lifecycle call runs. The lock itself is flock() on a file;
/// its holder also listens on a unix socket so that waiters can connect and
/// sleep until the connection breaks, which happens the moment the holder
/// releases the lock or dies (the kernel closes its sockets).
class vm_lock {
public:
    vm_lock(vm_lock&& other) noexcept;
    vm_lock& operator=(vm_lock&&) = delete;
    ~vm_lock();

    /// Takes the lock, waiting at most `timeout`; `errc::timeout` names
    /// `what`. The lock is on the file that is at `lock_file` when this
    /// returns (a holder that deletes it, as `remove` does, cannot leave us
    /// a lock on a deleted file). `prepare` (optional) is called when the
    /// lock file's directory is missing, to make it again. A symbolic link,
    /// FIFO or anything else but a regular file at `lock_file` is
    /// `errc::unsupported`.
    static boost::asio::awaitable<vm_lock> acquire(std::filesystem::path lock_file,
                                                   std::filesystem::path socket,
                                                   std::chrono::milliseconds timeout,
                                                   std::string what,
                                                   std::function<void()> prepare = {});

private:
    vm_lock(int file_fd, int listen_fd, std::filesystem::path socket) noexcept;
    int file_fd_ = -1;
    int listen_fd_ = -1;
    std::filesystem::path socket_;
};

/// Whether some process (a QEMU) holds QEMU's image locks on `image`: QEMU
/// locks a disk it opens for its whole life, so this holds even when the
/// runtime directory, pid file and all, was wiped. False when `image` cannot
/// be opened (or is a symbolic link).
bool image_in_use(const std::filesystem::path& image);

} // namespace localvm::qemu::detail
