// Run a coroutine to completion on its own io_context, with a hard deadline
// that names what was still pending when it fired.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>
#include <utility>

namespace localvm::testing {

namespace detail {
struct pending_registry;
} // namespace detail

/// Runs `body` on a fresh io_context (on this thread) until it finishes or
/// `deadline` passes. An exception from `body` is rethrown here. When the
/// deadline passes first, `localvm::error` with `errc::timeout` is thrown,
/// naming `what`, the deadline and every `pending` operation still alive
/// (with how long each had been waiting); the io_context is then stopped and
/// the coroutine's frame destroyed (its destructors run: children are
/// killed, sockets closed). Use it as the whole body of a Boost.Test case.
void run_coroutine(std::function<boost::asio::awaitable<void>()> body,
                   std::chrono::milliseconds deadline = std::chrono::seconds(60),
                   const std::string& what = "coroutine test body");

/// Names an operation as pending for as long as it lives, so that a
/// `run_coroutine` deadline says what the test was waiting for. Construct it
/// inside the coroutine, on the thread running `run_coroutine`; outside any
/// `run_coroutine` it does nothing. Not copyable or movable.
class pending {
public:
    /// Registers `what` (e.g. "wait_ready of vm 'a'") as pending from now on.
    explicit pending(std::string what);
    /// Unregisters it.
    ~pending();
    pending(const pending&) = delete;
    pending& operator=(const pending&) = delete;

private:
    detail::pending_registry* registry_;
    unsigned long long id_ = 0;
};

/// What is pending right now on this thread's `run_coroutine`, oldest
/// first, each as "what (for 1.2 s)"; empty outside one.
std::vector<std::string> pending_now();

/// Awaits `op` while it is registered as `pending(what)`; returns its result
/// and propagates its exception.
template <class T>
boost::asio::awaitable<T> step(std::string what, boost::asio::awaitable<T> op) {
    pending p(std::move(what));
    co_return co_await std::move(op);
}

/// `step` for awaitables without a result.
inline boost::asio::awaitable<void> step(std::string what, boost::asio::awaitable<void> op) {
    pending p(std::move(what));
    co_await std::move(op);
}

} // namespace localvm::testing
