#include "lock.hpp"

#include "detail/backoff.hpp"
#include "detail/race.hpp"
#include "sys/errno.hpp"

#include <localvm/error.hpp>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace localvm::qemu::detail {
namespace asio = boost::asio;

namespace {

int listen_on(const std::filesystem::path& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ::unlink(path.c_str());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd, 128) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

} // namespace

vm_lock::vm_lock(int file_fd, int listen_fd, std::filesystem::path socket) noexcept
    : file_fd_(file_fd)
    , listen_fd_(listen_fd)
    , socket_(std::move(socket)) {}

vm_lock::vm_lock(vm_lock&& other) noexcept
    : file_fd_(std::exchange(other.file_fd_, -1))
    , listen_fd_(std::exchange(other.listen_fd_, -1))
    , socket_(std::move(other.socket_)) {}

vm_lock::~vm_lock() {
    if (listen_fd_ >= 0) {
        ::unlink(socket_.c_str());
        ::close(listen_fd_); // wakes every waiter connected to it
    }
    if (file_fd_ >= 0)
        ::close(file_fd_); // releases the flock
}

asio::awaitable<vm_lock> vm_lock::acquire(std::filesystem::path lock_file,
                                          std::filesystem::path socket,
                                          std::chrono::milliseconds timeout, std::string what,
                                          std::function<void()> prepare) {
    auto executor = co_await asio::this_coro::executor;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    localvm::detail::backoff pause(std::chrono::milliseconds(5), std::chrono::milliseconds(100));
    int remade = 0;
    for (;;) {
        // Never through a link, and never a FIFO or device someone left there.
        int fd =
            ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ENOENT && prepare && remade++ < 3) {
            prepare(); // the directory went (a `remove` ended): make it again
            continue;
        }
        if (fd < 0 && errno == ELOOP)
            throw_error(errc::unsupported, "lock file " + lock_file.string() +
                                               " is a symbolic link; refusing to follow it");
        if (fd < 0)
            sys::throw_errno(errc::io_error, "cannot open lock file " + lock_file.string(), errno);
        struct ::stat held {};
        if (::fstat(fd, &held) != 0 || !S_ISREG(held.st_mode)) {
            ::close(fd);
            throw_error(errc::unsupported, "lock file " + lock_file.string() +
                                               " is not a regular file; refusing to use it");
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
            // The holder before us may have deleted (or replaced) the file
            // between our open and our flock: a lock on a file no longer at
            // the path excludes nobody, so take the one that is there now.
            struct ::stat now {};
            if (::lstat(lock_file.c_str(), &now) != 0 || now.st_dev != held.st_dev ||
                now.st_ino != held.st_ino) {
                ::close(fd);
                continue;
            }
            int lfd = listen_on(socket);
            co_return vm_lock(fd, lfd, socket);
        }
        int err = errno;
        ::close(fd);
        if (err != EWOULDBLOCK)
            sys::throw_errno(errc::io_error, "cannot lock " + lock_file.string(), err);
        if (std::chrono::steady_clock::now() >= deadline)
            throw_error(errc::timeout, "waiting for another process to finish with " + what);

        // Sleep until the holder lets go: its listening socket closes, which
        // resets our (possibly not yet accepted) connection. Until the holder
        // has bound its socket there is nothing to wait on but a short timer.
        asio::local::stream_protocol::socket waiter(executor);
        asio::steady_timer timer(executor, deadline);
        boost::system::error_code ec;
        waiter.open();
        waiter.non_blocking(true); // a full backlog must not block the thread
        waiter.connect(asio::local::stream_protocol::endpoint(socket.string()), ec);
        if (!ec) {
            char byte;
            boost::system::error_code read_ec, timer_ec; // outcomes do not matter: retry
            co_await localvm::detail::race(
                waiter.async_read_some(asio::buffer(&byte, 1),
                                       asio::redirect_error(asio::use_awaitable, read_ec)),
                timer.async_wait(asio::redirect_error(asio::use_awaitable, timer_ec)));
            pause.reset();
        } else {
            timer.expires_after(pause.next());
            co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }
}

bool image_in_use(const std::filesystem::path& image) {
    int fd = ::open(image.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    // QEMU (file-posix.c) takes shared OFD locks on byte 100 + n for each
    // permission it uses and 200 + n for each it does not share (7.2 with a
    // qcow2 opened read-write: 100-101, 103, 201, 203). A write lock over
    // both ranges conflicts with any of them.
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 100;
    fl.l_len = 200;
    int rc = ::fcntl(fd, F_OFD_GETLK, &fl);
    ::close(fd);
    return rc == 0 && fl.l_type != F_UNLCK;
}

} // namespace localvm::qemu::detail
