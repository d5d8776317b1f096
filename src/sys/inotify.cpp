#include "sys/inotify.hpp"

#include <localvm/error.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "detail/race.hpp"
#include "sys/errno.hpp"
#include <sys/inotify.h>

namespace localvm::sys {

namespace asio = boost::asio;

class inotify_service;

// One `inotify`'s part of the shared instance: its watches, whether events
// came for it, and its wake-up while it waits.
struct inotify_registration {
    inotify_service* service = nullptr;
    std::vector<int> wds;
    bool pending = false;             // events came since its last wait
    asio::steady_timer* wake = nullptr; // while it waits: cancelled to wake it
    std::string failure;              // the reader broke: why
};

// The io_context's one inotify instance. Watches are counted per watch
// descriptor (several registrations may watch one path); one reader
// coroutine runs while anyone waits.
class inotify_service : public asio::execution_context::service {
public:
    using key_type = inotify_service;
    static inline asio::execution_context::id id;

    explicit inotify_service(asio::execution_context& ctx)
        : service(ctx) {}

    void add(inotify_registration& r) { regs_.push_back(&r); }

    void remove(inotify_registration& r) {
        std::erase(regs_, &r);
        for (int wd : r.wds)
            if (--watches_[wd] == 0) {
                watches_.erase(wd);
                if (stream_)
                    ::inotify_rm_watch(stream_->native_handle(), wd);
            }
        stop_reading_if_idle();
    }

    // Made on first use, so that an io_context that never waits holds none.
    void open(const asio::any_io_executor& ex) {
        if (stream_)
            return;
        int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
            throw_errno(errc::io_error, "inotify_init1", errno);
        stream_.emplace(ex, fd);
    }

    bool watch(inotify_registration& r, const std::filesystem::path& path, std::uint32_t mask) {
        int wd = ::inotify_add_watch(stream_->native_handle(), path.c_str(), mask | IN_MASK_ADD);
        if (wd < 0)
            return false;
        if (std::find(r.wds.begin(), r.wds.end(), wd) == r.wds.end()) {
            r.wds.push_back(wd);
            ++watches_[wd];
        }
        return true;
    }

    // `r` waits: the reader runs until nobody does.
    void waiting(const asio::any_io_executor& ex) {
        if (reading_)
            return;
        reading_ = true;
        // Nothing in it throws (errors are codes): no failure to lose.
        asio::co_spawn(ex, read_loop(), [](std::exception_ptr) {});
    }

    void stop_reading_if_idle() {
        if (!stream_ || !reading_)
            return;
        for (auto* r : regs_)
            if (r->wake)
                return;
        boost::system::error_code ignored;
        stream_->cancel(ignored); // the reader ends; nothing runs while no one waits
    }

private:
    void shutdown() override { stream_.reset(); }

    void wake(inotify_registration& r) {
        r.pending = true;
        if (r.wake)
            r.wake->cancel();
    }

    // Wakes the registrations the events in buf[0, n) concern. A plain
    // function, not part of the coroutine: GCC 12 does not honour alignas for
    // a coroutine frame's locals (the buffer may sit at any address) and will
    // not put a struct with a flexible array member in a frame.
    void dispatch(const char* buf, std::size_t n) {
        for (std::size_t at = 0; at + sizeof(inotify_event) <= n;) {
            inotify_event e;
            std::memcpy(&e, buf + at, sizeof e);
            for (auto* r : regs_)
                if ((e.mask & IN_Q_OVERFLOW) ||
                    std::find(r->wds.begin(), r->wds.end(), e.wd) != r->wds.end())
                    wake(*r);
            at += sizeof(inotify_event) + e.len;
        }
    }

    asio::awaitable<void> read_loop() {
        char buf[4096];
        for (;;) {
            if (std::none_of(regs_.begin(), regs_.end(), [](auto* r) { return r->wake; }))
                break;
            boost::system::error_code ec;
            std::size_t n = co_await stream_->async_read_some(
                asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::operation_aborted)
                continue; // the last waiter left; or a new one came meanwhile
            if (ec) {
                // Broken: tell every waiter.
                for (auto* r : regs_) {
                    r->failure = "reading inotify events: " + ec.message();
                    wake(*r);
                }
                break;
            }
            dispatch(buf, n);
        }
        reading_ = false; // here, not in the completion: a wait may follow at once
    }

    std::optional<asio::posix::stream_descriptor> stream_;
    std::map<int, int> watches_; // wd -> registrations holding it
    std::vector<inotify_registration*> regs_;
    bool reading_ = false;
};

namespace {

inotify_service& service_of(const asio::any_io_executor& ex) {
    return asio::use_service<inotify_service>(asio::query(ex, asio::execution::context));
}

} // namespace

inotify::inotify(const asio::any_io_executor& ex)
    : reg_(std::make_unique<inotify_registration>()) {
    auto& s = service_of(ex);
    s.open(ex);
    reg_->service = &s;
    s.add(*reg_);
}

inotify::inotify(inotify&&) noexcept = default;

inotify::~inotify() {
    if (reg_)
        reg_->service->remove(*reg_);
}

bool inotify::watch(const std::filesystem::path& path, std::uint32_t mask) noexcept {
    return reg_->service->watch(*reg_, path, mask);
}

asio::awaitable<void> inotify::wait() {
    auto& r = *reg_;
    if (!r.pending && r.failure.empty()) {
        auto ex = co_await asio::this_coro::executor;
        asio::steady_timer wake(ex, asio::steady_timer::time_point::max());
        r.wake = &wake;
        struct unregister {
            inotify_registration& r;
            ~unregister() {
                r.wake = nullptr;
                r.service->stop_reading_if_idle();
            }
        } guard{r};
        r.service->waiting(ex);
        boost::system::error_code ec;
        co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        // The reader wakes us by cancelling `wake` after marking us: without
        // a mark, the cancellation was this call's own.
        if (!r.pending && r.failure.empty())
            throw boost::system::system_error(asio::error::operation_aborted);
    }
    if (!r.failure.empty())
        throw_error(errc::io_error, r.failure);
    r.pending = false;
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
