// An inter-process lock on one VM that waiters await without polling.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
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

    /// Takes the lock, waiting at most `timeout`; `errc::timeout` names `what`.
    static boost::asio::awaitable<vm_lock> acquire(std::filesystem::path lock_file,
                                                   std::filesystem::path socket,
                                                   std::chrono::milliseconds timeout,
                                                   std::string what);

private:
    vm_lock(int file_fd, int listen_fd, std::filesystem::path socket) noexcept;
    int file_fd_ = -1;
    int listen_fd_ = -1;
    std::filesystem::path socket_;
};

} // namespace localvm::qemu::detail
