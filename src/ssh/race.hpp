// Racing a piece of work against an abort hook (e.g. "QEMU exited"): the
// shape the ssh layer uses, on top of the one race helper of src/
// (detail/race.hpp: the first completion wins, success or exception).
#pragma once

#include "../detail/race.hpp"

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
    co_return co_await localvm::detail::race(std::move(work), std::move(abort));
}

} // namespace localvm::ssh::detail
