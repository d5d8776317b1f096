#include "watch.hpp"

#include "detail/race.hpp"

#include <localvm/error.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace localvm::qemu::detail {
namespace asio = boost::asio;

asio::awaitable<bool> wait_for_path(std::filesystem::path path, std::chrono::milliseconds timeout) {
    auto executor = co_await asio::this_coro::executor;
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        throw_error(errc::io_error, std::string("inotify_init1: ") + std::strerror(errno));
    asio::posix::stream_descriptor watch(executor, fd);
    auto dir = path.parent_path();
    if (::inotify_add_watch(fd, dir.c_str(), IN_CREATE | IN_MOVED_TO) < 0)
        throw_error(errc::io_error, "cannot watch " + dir.string() + ": " + std::strerror(errno));
    asio::steady_timer timer(executor, timeout);
    // Checked after the watch exists, so a creation in between is not missed.
    while (!std::filesystem::exists(path)) {
        alignas(inotify_event) char buf[4096];
        // Each branch needs its own error code: the loser's cancellation
        // is reported too.
        boost::system::error_code ec, timer_ec;
        auto r = co_await localvm::detail::race(
            watch.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec)),
            timer.async_wait(asio::redirect_error(asio::use_awaitable, timer_ec)));
        if (r.index() == 1)
            co_return std::filesystem::exists(path);
        if (ec)
            throw_error(errc::io_error, "reading inotify events: " + ec.message());
    }
    co_return true;
}

std::optional<pid_t> lock_owner(const std::filesystem::path& pidfile) {
    // Not through a link (it could name another program's locked pid file,
    // whose owner stop would then signal), and without blocking on a FIFO.
    int fd = ::open(pidfile.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ELOOP)
        throw_error(errc::unsupported,
                    "pid file " + pidfile.string() + " is a symbolic link; refusing to follow it");
    if (fd < 0)
        return std::nullopt;
    struct ::stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw_error(errc::unsupported,
                    "pid file " + pidfile.string() + " is not a regular file; refusing to use it");
    }
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    int rc = ::fcntl(fd, F_GETLK, &fl);
    ::close(fd);
    if (rc != 0 || fl.l_type == F_UNLCK || fl.l_pid <= 0)
        return std::nullopt;
    return fl.l_pid;
}

} // namespace localvm::qemu::detail
