// Cancelling an operation in a coroutine test: start it, let it reach its
// wait, emit a terminal cancellation, await its end, and tell whether it
// ended as asio's cancellation contract says (operation_aborted).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <exception>

namespace lvtest {

/// Runs `op` on the current executor; after `after` (time for it to start
/// waiting: everything posted before then has run) cancels it (terminal)
/// and awaits its end, however long that takes (the test's own deadline
/// bounds it). True when it ended with operation_aborted; false when it
/// returned or threw anything else.
template <class T>
boost::asio::awaitable<bool> ends_aborted_when_cancelled(
    boost::asio::awaitable<T> op,
    std::chrono::steady_clock::duration after = std::chrono::milliseconds(20)) {
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor;
    asio::cancellation_signal cancel;
    bool aborted = false;
    asio::steady_timer finished(ex, std::chrono::steady_clock::time_point::max());
    asio::co_spawn(
        ex, std::move(op),
        asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, auto&&...) {
            finished.cancel();
            try {
                if (e)
                    std::rethrow_exception(e);
            } catch (const boost::system::system_error& se) {
                aborted = se.code() == asio::error::operation_aborted;
            } catch (...) {
            }
        }));
    asio::steady_timer started(ex, after);
    co_await started.async_wait(asio::use_awaitable);
    cancel.emit(asio::cancellation_type::terminal);
    boost::system::error_code ec;
    co_await finished.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return aborted;
}

} // namespace lvtest
