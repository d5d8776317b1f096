// Internal: the end of a step that failed (or was cancelled) after it had
// changed something: undo as a best effort, report the first failure.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>

#include <exception>
#include <functional>

namespace localvm::detail {

/// Resets the calling coroutine's cancellation state (asio would throw
/// again at the next co_await of a cancelled coroutine), runs `undo` as a
/// best effort (an exception from it is swallowed: `failure` is the one to
/// report) and rethrows `failure`. Never returns normally.
inline boost::asio::awaitable<void> undo_and_rethrow(
    std::exception_ptr failure, std::function<boost::asio::awaitable<void>()> undo) {
    co_await boost::asio::this_coro::reset_cancellation_state();
    try {
        co_await undo();
    } catch (const std::exception&) {
        // The original failure is the one to report.
    }
    std::rethrow_exception(failure);
}

} // namespace localvm::detail
