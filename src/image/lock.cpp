#include "lock.hpp"

#include <localvm/error.hpp>

#include <boost/asio/this_coro.hpp>

#include <cerrno>

#include "sys/errno.hpp"
#include "sys/inotify.hpp"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>

namespace localvm::image::detail {
namespace asio = boost::asio;

sys::unique_fd open_lock_file(const std::filesystem::path& path) {
    sys::unique_fd fd(
        ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
    if (!fd && errno == ELOOP)
        throw_error(errc::unsupported,
                    "lock file " + path.string() + " is a symbolic link; refusing to follow it");
    if (!fd)
        sys::throw_errno(errc::io_error, "cannot open lock file " + path.string(), errno);
    struct ::stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        throw_error(errc::unsupported,
                    "lock file " + path.string() + " is not a regular file; refusing to use it");
    return fd;
}

asio::awaitable<entry_lock> entry_lock::acquire(std::filesystem::path path,
                                                std::chrono::steady_clock::time_point deadline,
                                                std::string what, std::function<void()> on_wait) {
    auto executor = co_await asio::this_coro::executor;
    bool told = false;
    for (;;) {
        auto file = open_lock_file(path);
        struct ::stat held {};
        ::fstat(file.get(), &held);
        // Watch before trying, so that a release between our try and our
        // wait is not missed.
        sys::inotify notify(executor);
        if (!notify.watch(path, IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB |
                                    IN_DONT_FOLLOW))
            sys::throw_errno(errc::io_error, "cannot watch lock file " + path.string(), errno);

        // Done when locked, or when the file at `path` is no longer the one
        // we hold open (a holder that removed the entry, `remove_cached`,
        // deleted it: a lock on it excludes nobody; take the one there now).
        bool locked = false;
        auto settled = [&] {
            struct ::stat now {};
            const bool replaced = ::lstat(path.c_str(), &now) != 0 ||
                                  now.st_dev != held.st_dev || now.st_ino != held.st_ino;
            if (::flock(file.get(), LOCK_EX | LOCK_NB) == 0) {
                locked = !replaced;
                return true;
            }
            if (errno != EWOULDBLOCK)
                sys::throw_errno(errc::io_error, "cannot lock " + path.string(), errno);
            if (!told && on_wait && !replaced) {
                told = true;
                on_wait();
            }
            return replaced;
        };
        if (!co_await notify.wait_until(settled, deadline))
            throw_error(errc::timeout, "waiting for another process fetching " + what);
        if (locked)
            co_return entry_lock(std::move(file));
    }
}

} // namespace localvm::image::detail
