// Racing a piece of work against an abort hook (e.g. "QEMU exited").
//
// Not `experimental::awaitable_operators::operator||`: in Boost 1.81 it waits
// for one *success*, so a failing probe would keep waiting for the hook.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <string>
#include <variant>

namespace localvm::ssh::detail {

/// Runs `work` and `abort` concurrently; the first to finish (value or
/// exception) wins and the other is cancelled and awaited. An exception of
/// the winner is rethrown; otherwise index 0 holds work's value, index 1
/// abort's diagnostic.
template <class T>
boost::asio::awaitable<std::variant<T, std::string>> race_abort(boost::asio::awaitable<T> work,
                                                                boost::asio::awaitable<std::string> abort) {
    namespace asio = boost::asio;
    auto ex = co_await asio::this_coro::executor;
    auto [order, e0, r0, e1, r1] =
        co_await asio::experimental::make_parallel_group(
            asio::co_spawn(ex, std::move(work), asio::deferred),
            asio::co_spawn(ex, std::move(abort), asio::deferred))
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    if (order[0] == 0) {
        if (e0)
            std::rethrow_exception(e0);
        co_return std::variant<T, std::string>(std::in_place_index<0>, std::move(r0));
    }
    if (e1)
        std::rethrow_exception(e1);
    co_return std::variant<T, std::string>(std::in_place_index<1>, std::move(r1));
}

} // namespace localvm::ssh::detail
