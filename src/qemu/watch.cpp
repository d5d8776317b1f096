#include "watch.hpp"

#include "detail/race.hpp"

#include <localvm/error.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace localvm::qemu::detail {
namespace asio = boost::asio;

namespace {

// One inotify instance per io_context, shared by every wait_for_path on it:
// inotify instances are a small per-user resource (fs.inotify.
// max_user_instances, 128 by default, shared by all of the user's
// processes), so one per waiter made a few hundred concurrent starts fail
// with EMFILE. Watches are counted per directory; one reader coroutine runs
// while anyone waits and wakes the waiters of the directory an event names.
class inotify_service : public asio::execution_context::service {
public:
    using key_type = inotify_service;
    static inline asio::execution_context::id id;

    explicit inotify_service(asio::execution_context& ctx) : service(ctx) {}
    ~inotify_service() override {
        if (fd_ >= 0)
            ::close(fd_);
    }

    struct waiter {
        int wd = -1;
        asio::steady_timer* wake = nullptr;
    };

    // Watches `dir` for waiter `w` (the instance made on first use).
    void add(asio::any_io_executor ex, const std::filesystem::path& dir, waiter& w) {
        if (fd_ < 0) {
            fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
            if (fd_ < 0)
                throw_error(errc::io_error, std::string("inotify_init1: ") + std::strerror(errno));
        }
        int wd = ::inotify_add_watch(fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO);
        if (wd < 0)
            throw_error(errc::io_error, "cannot watch " + dir.string() + ": " + std::strerror(errno));
        w.wd = wd;
        ++watches_[wd];
        waiters_.push_back(&w);
        if (!reading_) {
            reading_ = true;
            if (!stream_)
                stream_.emplace(ex, ::fcntl(fd_, F_DUPFD_CLOEXEC, 0));
            // Nothing in it throws (errors are codes): no failure to lose.
            asio::co_spawn(ex, read_loop(), [](std::exception_ptr) {});
        }
    }

    void remove(waiter& w) {
        std::erase(waiters_, &w);
        if (--watches_[w.wd] == 0) {
            watches_.erase(w.wd);
            ::inotify_rm_watch(fd_, w.wd);
        }
        if (waiters_.empty() && stream_) {
            boost::system::error_code ignored;
            stream_->cancel(ignored); // the reader ends; nothing runs while no one waits
        }
    }

private:
    void shutdown() override { stream_.reset(); }

    asio::awaitable<void> read_loop() {
        alignas(inotify_event) char buf[4096];
        for (;;) {
            if (waiters_.empty())
                break;
            boost::system::error_code ec;
            std::size_t n = co_await stream_->async_read_some(
                asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::operation_aborted)
                continue; // the last waiter left; or a new one came meanwhile
            if (ec) {
                // Broken: wake everyone to look for themselves (a waiter
                // checks its path after each wake-up).
                for (auto* w : waiters_)
                    w->wake->cancel();
                break;
            }
            for (std::size_t at = 0; at + sizeof(inotify_event) <= n;) {
                auto* e = reinterpret_cast<inotify_event*>(buf + at);
                for (auto* w : waiters_)
                    if (w->wd == e->wd || (e->mask & IN_Q_OVERFLOW))
                        w->wake->cancel();
                at += sizeof(inotify_event) + e->len;
            }
        }
        reading_ = false; // here, not in the completion: an add() may follow at once
    }

    int fd_ = -1;
    std::optional<asio::posix::stream_descriptor> stream_;
    std::map<int, int> watches_; // wd -> waiters on it
    std::vector<waiter*> waiters_;
    bool reading_ = false;
};

} // namespace

asio::awaitable<bool> wait_for_path(std::filesystem::path path, std::chrono::milliseconds timeout) {
    auto executor = co_await asio::this_coro::executor;
    auto& service = asio::use_service<inotify_service>(
        asio::query(executor, asio::execution::context));
    // Woken (cancelled) by the reader on an event in the directory; the
    // deadline is a second timer.
    asio::steady_timer wake(executor, asio::steady_timer::time_point::max());
    inotify_service::waiter w;
    w.wake = &wake;
    service.add(executor, path.parent_path(), w);
    struct unregister {
        inotify_service& s;
        inotify_service::waiter& w;
        ~unregister() { s.remove(w); }
    } guard{service, w};
    asio::steady_timer deadline(executor, timeout);
    // Checked after the watch exists, so a creation in between is not missed.
    while (!std::filesystem::exists(path)) {
        boost::system::error_code wake_ec, deadline_ec;
        auto r = co_await localvm::detail::race(
            wake.async_wait(asio::redirect_error(asio::use_awaitable, wake_ec)),
            deadline.async_wait(asio::redirect_error(asio::use_awaitable, deadline_ec)));
        if (r.index() == 1)
            co_return std::filesystem::exists(path);
        // A wake-up is a cancellation of `wake` by the reader: distinguish it
        // from a cancellation of this call.
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none)
            throw boost::system::system_error(asio::error::operation_aborted);
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
