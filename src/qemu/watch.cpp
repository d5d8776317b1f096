#include "watch.hpp"

#include <localvm/error.hpp>

#include <boost/asio/this_coro.hpp>

#include <cerrno>

#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include "sys/inotify.hpp"
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

namespace localvm::qemu::detail {
namespace asio = boost::asio;

asio::awaitable<bool> wait_for_path(std::filesystem::path path, std::chrono::milliseconds timeout) {
    sys::inotify notify(co_await asio::this_coro::executor);
    const auto dir = path.parent_path();
    if (!notify.watch(dir, IN_CREATE | IN_MOVED_TO))
        sys::throw_errno(errc::io_error, "cannot watch " + dir.string(), errno);
    // Checked after the watch exists, so a creation in between is not missed.
    co_return co_await notify.wait_until([&] { return std::filesystem::exists(path); },
                                         std::chrono::steady_clock::now() + timeout);
}

std::optional<pid_t> lock_owner(const std::filesystem::path& pidfile) {
    // Not through a link (it could name another program's locked pid file,
    // whose owner stop would then signal), and without blocking on a FIFO.
    sys::unique_fd fd(::open(pidfile.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd && errno == ELOOP)
        throw_error(errc::unsupported,
                    "pid file " + pidfile.string() + " is a symbolic link; refusing to follow it");
    if (!fd)
        return std::nullopt;
    struct ::stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        throw_error(errc::unsupported,
                    "pid file " + pidfile.string() + " is not a regular file; refusing to use it");
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    int rc = ::fcntl(fd.get(), F_GETLK, &fl);
    if (rc != 0 || fl.l_type == F_UNLCK || fl.l_pid <= 0)
        return std::nullopt;
    return fl.l_pid;
}

} // namespace localvm::qemu::detail
