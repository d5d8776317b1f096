// Internal: the small coroutine helpers every connection-oriented client in
// src/ (QMP, the guest agent, libvirt) needs: deadlines as time points, a
// timer used as a wake-up, a cancellation check, scope guards, and the
// millisecond text of error messages.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <chrono>
#include <string>

namespace localvm::detail {

/// `now + d`, or "never" for a zero or negative `d` (no deadline).
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::steady_clock::duration d) {
    return d.count() > 0 ? std::chrono::steady_clock::now() + d
                         : std::chrono::steady_clock::time_point::max();
}

/// What is left until `deadline` as a timeout for a call: whole
/// milliseconds rounded up, at least 1 ms (never `no_deadline`'s zero).
inline std::chrono::milliseconds time_left(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return std::max(left, std::chrono::milliseconds(1));
}

/// Waits on `t` until someone cancels it (a wake-up) or `deadline` passes;
/// true when the deadline passed. A wake-up and a cancellation of the
/// awaiting coroutine look alike here: callers check their own state first,
/// then `throw_if_cancelled`.
inline boost::asio::awaitable<bool> wait_for_wakeup(boost::asio::steady_timer& t,
                                                    std::chrono::steady_clock::time_point deadline) {
    t.expires_at(deadline);
    boost::system::error_code ec;
    co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    co_return !ec;
}

/// Throws `operation_aborted` when the awaiting coroutine was cancelled.
inline boost::asio::awaitable<void> throw_if_cancelled() {
    boost::asio::cancellation_state cs = co_await boost::asio::this_coro::cancellation_state;
    if (cs.cancelled() != boost::asio::cancellation_type::none)
        throw boost::system::system_error(boost::asio::error::operation_aborted);
}

/// "<d in whole milliseconds> ms", for messages.
inline std::string ms(std::chrono::steady_clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) +
           " ms";
}

/// Runs `f` when the scope ends, however it ends.
template <class F> struct scope_exit {
    F f;
    ~scope_exit() { f(); }
};
template <class F> scope_exit(F) -> scope_exit<F>;

} // namespace localvm::detail
