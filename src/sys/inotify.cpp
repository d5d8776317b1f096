#include "sys/inotify.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>

#include "detail/race.hpp"
#include "sys/errno.hpp"
#include <sys/inotify.h>

namespace localvm::sys {

namespace asio = boost::asio;

namespace {

int make_instance() {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        throw_errno(errc::io_error, "inotify_init1", errno);
    return fd;
}

} // namespace

inotify::inotify(const asio::any_io_executor& ex)
    : fd_(ex, make_instance()) {}

bool inotify::watch(const std::filesystem::path& path, std::uint32_t mask) noexcept {
    return ::inotify_add_watch(fd_.native_handle(), path.c_str(), mask) >= 0;
}

asio::awaitable<void> inotify::wait() {
    boost::system::error_code ec;
    co_await fd_.async_read_some(asio::buffer(events_),
                                 asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted)
        throw boost::system::system_error(ec);
    if (ec)
        throw_error(errc::io_error, "reading inotify events: " + ec.message());
}

asio::awaitable<bool> inotify::wait_until(std::function<bool()> done,
                                          std::chrono::steady_clock::time_point deadline) {
    asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
    while (!done()) {
        auto r = co_await localvm::detail::race(wait(), timer.async_wait(asio::use_awaitable));
        if (r.index() == 1)
            co_return done();
    }
    co_return true;
}

} // namespace localvm::sys
