#include "sys/pidfd.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>

#include "detail/await.hpp"
#include "detail/race.hpp"
#include "sys/errno.hpp"
#include <fcntl.h>

namespace localvm::sys {

namespace asio = boost::asio;

asio::awaitable<bool> pidfd_wait(int pidfd, std::chrono::milliseconds timeout) {
    if (pidfd_exited(pidfd))
        co_return true;
    if (timeout.count() < 0)
        co_return false;
    // The descriptor owns (closes) what it wraps: give it a duplicate.
    int dup = ::fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0)
        throw_errno(errc::io_error, "cannot duplicate a pidfd", errno);
    auto ex = co_await asio::this_coro::executor;
    asio::posix::stream_descriptor watch(ex, dup);
    asio::steady_timer t(ex, localvm::detail::deadline_after(timeout));
    for (;;) {
        auto r = co_await localvm::detail::race(
            watch.async_wait(asio::posix::descriptor_base::wait_read, asio::use_awaitable),
            t.async_wait(asio::use_awaitable));
        if (r.index() == 1)
            co_return pidfd_exited(pidfd);
        // Why check again: asio (1.81) can hand a new descriptor that reuses
        // a just-closed fd number a readiness event meant for the old one.
        if (pidfd_exited(pidfd))
            co_return true;
    }
}

} // namespace localvm::sys
