// Internal: the one way to race awaitables in localvm (and to put a deadline
// on one), for every layer of src/.
//
// Why not `experimental::awaitable_operators::operator||`: in Boost 1.81 it
// waits for the first *success*, so an operation that fails while a timer
// runs is not noticed until the timer fires, and then the timer "wins" and
// the failure is lost. Here the first operation to complete wins, whether it
// returned or threw, as with `make_parallel_group(...).async_wait(
// wait_for_one(), ...)`, which this wraps so that nobody writes the tuple
// unpacking again. Experimental types stay in here, out of public headers.
#pragma once

#include <localvm/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace localvm::detail {

/// What `race` holds for an operation of result `T`: `T`, or
/// `std::monostate` for `void`.
template <class T> using race_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

namespace race_impl {

// Every operation completes with (exception_ptr, optional<value>): uniform
// for void operations, and no default constructor needed (co_spawn passes a
// default-constructed value along with an exception).
template <class T>
boost::asio::awaitable<std::optional<race_value_t<T>>> lift(boost::asio::awaitable<T> op) {
    if constexpr (std::is_void_v<T>) {
        co_await std::move(op);
        co_return std::monostate{};
    } else {
        co_return co_await std::move(op);
    }
}

// The winner's value as alternative I of the variant, or its exception.
// `done` is (order, e0, v0, e1, v1, ...).
template <class Variant, std::size_t I = 0, class Done>
Variant pick(std::size_t winner, Done& done) {
    if constexpr (I + 1 < std::variant_size_v<Variant>) {
        if (winner != I)
            return pick<Variant, I + 1>(winner, done);
    }
    if (auto& failure = std::get<1 + 2 * I>(done))
        std::rethrow_exception(failure);
    return Variant(std::in_place_index<I>, std::move(*std::get<2 + 2 * I>(done)));
}

// The values of all, or the exception of the first (in completion order,
// `done`'s order) that threw. `done` is (order, e0, v0, e1, v1, ...).
template <class Tuple, class Done, std::size_t... I>
Tuple take_all(Done& done, std::index_sequence<I...>) {
    const std::array<std::exception_ptr, sizeof...(I)> failures{std::get<1 + 2 * I>(done)...};
    for (std::size_t i : std::get<0>(done))
        if (failures[i])
            std::rethrow_exception(failures[i]);
    return Tuple(std::move(*std::get<2 + 2 * I>(done))...);
}

} // namespace race_impl

/// Runs `ops` concurrently on the current executor. The first to complete
/// wins, whether it returned or threw: the others are cancelled (terminal
/// cancellation) and awaited before this returns, and what they returned or
/// threw is discarded. The winner's exception is rethrown; otherwise the
/// variant holds its value at the winner's position (`std::monostate` for a
/// `void` operation). Cancelling the race cancels every operation; then the
/// first to complete (normally with `operation_aborted`) is the outcome.
///
/// Each operation is its own coroutine: it must not refer to a temporary of
/// the caller's full expression (pass awaitables of named objects, or of
/// plain functions taking their arguments by value).
template <class... Ts>
boost::asio::awaitable<std::variant<race_value_t<Ts>...>> race(boost::asio::awaitable<Ts>... ops) {
    static_assert(sizeof...(Ts) >= 2, "a race needs at least two operations");
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor;
    auto done = co_await asio::experimental::make_parallel_group(
                    asio::co_spawn(ex, race_impl::lift(std::move(ops)), asio::deferred)...)
                    .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    co_return race_impl::pick<std::variant<race_value_t<Ts>...>>(std::get<0>(done)[0], done);
}

/// Runs `ops` concurrently on the current executor and waits for all of
/// them: the tuple of their values (`std::monostate` for a `void`
/// operation). They start in the order given, each running until it first
/// suspends before the next starts, so an operation that queues a request
/// synchronously (a QMP command) sends it in that order. The first to throw
/// ends the wait: the others are cancelled (terminal cancellation) and
/// awaited, what they returned or threw is discarded, and its exception is
/// rethrown (one exception, not asio's `multiple_exceptions`). Cancelling
/// it cancels every operation. The same lifetime rule as `race`.
template <class... Ts>
boost::asio::awaitable<std::tuple<race_value_t<Ts>...>> all(boost::asio::awaitable<Ts>... ops) {
    static_assert(sizeof...(Ts) >= 2, "all needs at least two operations");
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor;
    auto done = co_await asio::experimental::make_parallel_group(
                    asio::co_spawn(ex, race_impl::lift(std::move(ops)), asio::deferred)...)
                    .async_wait(asio::experimental::wait_for_one_error(), asio::use_awaitable);
    co_return race_impl::take_all<std::tuple<race_value_t<Ts>...>>(
        done, std::index_sequence_for<Ts...>{});
}

/// The message of a deadline that passed: "timed out after 250 ms waiting for
/// <what>".
inline std::string timeout_message(std::chrono::steady_clock::duration timeout,
                                   std::string_view what) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    return "timed out after " + std::to_string(ms) + " ms waiting for " + std::string(what);
}

/// Awaits `op` for at most `timeout`: its value or exception if it completes
/// first; otherwise `op` is cancelled and awaited, and `localvm::error` with
/// `errc::timeout` is thrown, naming `what` ("the QMP greeting") and the
/// timeout. Cancellation: as `race` (`op` is cancelled, then its outcome,
/// normally `operation_aborted`, propagates).
template <class T>
boost::asio::awaitable<T> with_deadline(boost::asio::awaitable<T> op,
                                        std::chrono::steady_clock::duration timeout,
                                        std::string what) {
    namespace asio = boost::asio;
    asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
    auto outcome = co_await race(std::move(op), timer.async_wait(asio::use_awaitable));
    if (outcome.index() == 1)
        throw_error(errc::timeout, timeout_message(timeout, what));
    if constexpr (!std::is_void_v<T>)
        co_return std::move(std::get<0>(outcome));
}

} // namespace localvm::detail
