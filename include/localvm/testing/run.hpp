// Run a coroutine to completion on its own io_context, with a hard deadline.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace localvm::testing {

/// Runs `body` on a fresh io_context (on this thread) until it finishes or
/// `deadline` passes. An exception from `body` is rethrown here. When the
/// deadline passes first, the io_context is stopped, the coroutine's frame is
/// destroyed (its destructors run: children are killed, sockets closed) and
/// `localvm::error` with `errc::timeout` is thrown, naming `what` and the
/// deadline. Use it as the whole body of a Boost.Test case.
void run_coroutine(std::function<boost::asio::awaitable<void>()> body,
                   std::chrono::steady_clock::duration deadline = std::chrono::seconds(60),
                   const std::string& what = "coroutine test body");

} // namespace localvm::testing
