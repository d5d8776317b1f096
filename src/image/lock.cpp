#include "lock.hpp"

#include <localvm/error.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstring>

#include "detail/race.hpp"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm::image::detail {
namespace asio = boost::asio;

namespace {

struct fd_guard {
    int fd = -1;
    ~fd_guard() {
        if (fd >= 0)
            ::close(fd);
    }
    int release() { return std::exchange(fd, -1); }
};

} // namespace

entry_lock::entry_lock(int fd) noexcept
    : fd_(fd) {}

entry_lock::entry_lock(entry_lock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

entry_lock::~entry_lock() {
    if (fd_ >= 0)
        ::close(fd_); // releases the flock and wakes the waiters (IN_CLOSE_WRITE)
}

asio::awaitable<entry_lock> entry_lock::acquire(std::filesystem::path path,
                                                std::chrono::steady_clock::time_point deadline,
                                                std::string what, std::function<void()> on_wait) {
    auto executor = co_await asio::this_coro::executor;
    bool told = false;
    for (;;) {
        fd_guard file{
            ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600)};
        if (file.fd < 0 && errno == ELOOP)
            throw_error(errc::unsupported, "lock file " + path.string() +
                                               " is a symbolic link; refusing to follow it");
        if (file.fd < 0)
            throw_error(errc::io_error,
                        "cannot open lock file " + path.string() + ": " + std::strerror(errno));
        struct ::stat held {};
        if (::fstat(file.fd, &held) != 0 || !S_ISREG(held.st_mode))
            throw_error(errc::unsupported, "lock file " + path.string() +
                                               " is not a regular file; refusing to use it");

        // Watch before trying, so that a release between our try and our
        // wait is not missed.
        fd_guard notify{::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)};
        if (notify.fd < 0 || ::inotify_add_watch(notify.fd, path.c_str(),
                                                 IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF |
                                                     IN_ATTRIB | IN_DONT_FOLLOW) < 0)
            throw_error(errc::io_error,
                        "cannot watch lock file " + path.string() + ": " + std::strerror(errno));
        asio::posix::stream_descriptor events(executor, notify.release());

        for (;;) {
            if (::flock(file.fd, LOCK_EX | LOCK_NB) == 0) {
                // A holder that removed the entry (remove_cached) deleted the
                // file we locked: a lock on it excludes nobody. Take the one
                // at the path now.
                struct ::stat now {};
                if (::lstat(path.c_str(), &now) != 0 || now.st_dev != held.st_dev ||
                    now.st_ino != held.st_ino)
                    break;
                co_return entry_lock(file.release());
            }
            int err = errno;
            if (err != EWOULDBLOCK)
                throw_error(errc::io_error,
                            "cannot lock " + path.string() + ": " + std::strerror(err));
            if (std::chrono::steady_clock::now() >= deadline)
                throw_error(errc::timeout, "waiting for another process fetching " + what);
            if (!told && on_wait) {
                told = true;
                on_wait();
            }
            asio::steady_timer timer(executor, deadline);
            boost::system::error_code wait_ec, timer_ec;
            co_await localvm::detail::race(
                events.async_wait(asio::posix::descriptor_base::wait_read,
                                  asio::redirect_error(asio::use_awaitable, wait_ec)),
                timer.async_wait(asio::redirect_error(asio::use_awaitable, timer_ec)));
            if ((co_await asio::this_coro::cancellation_state).cancelled() !=
                asio::cancellation_type::none)
                throw boost::system::system_error(asio::error::operation_aborted);
            // Drain the events (their content does not matter: try again).
            char drain[4096];
            while (::read(events.native_handle(), drain, sizeof drain) > 0) {
            }
            struct ::stat now {};
            if (::lstat(path.c_str(), &now) != 0 || now.st_ino != held.st_ino)
                break; // deleted or replaced: open the new one
        }
    }
}

} // namespace localvm::image::detail
