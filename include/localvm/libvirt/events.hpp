// Domain lifecycle events from a libvirt connection.
#pragma once

#include <localvm/wait.hpp>
#include <localvm/libvirt/procedures.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace localvm::libvirt {

/// `virDomainEventType`.
enum class lifecycle_event : std::int32_t {
    defined = 0,
    undefined = 1,
    started = 2,
    suspended = 3,
    resumed = 4,
    stopped = 5,
    shutdown = 6,
    pmsuspended = 7,
    crashed = 8,
};

/// One lifecycle event (`VIR_DOMAIN_EVENT_ID_LIFECYCLE`).
struct lifecycle {
    domain_ref dom;          ///< The domain it happened to.
    lifecycle_event event{}; ///< What happened (unknown values are kept as is).
    std::int32_t detail = 0; ///< The event's detail, e.g. for `stopped` 2 = destroyed.
};

namespace detail {
struct client_impl;
struct event_sink;
} // namespace detail

/// The lifecycle events of one registration with the daemon, in the order
/// the daemon sent them (libvirt may send `resumed` just before `started`
/// when a domain boots). Move-only; use from the client's executor.
/// Destroying it stops delivery locally; `close()` also deregisters with
/// the daemon.
class lifecycle_events {
public:
    lifecycle_events(lifecycle_events&&) noexcept;
    lifecycle_events& operator=(lifecycle_events&&) noexcept;
    ~lifecycle_events();

    /// The next event. Waits at most `timeout` (`no_deadline`, the default: no
    /// limit). Throws `errc::timeout` when it passes, `errc::libvirt_closed`
    /// once the connection ended and every buffered event was taken,
    /// `errc::invalid_argument` if another `next` waits. Cancellation:
    /// throws `operation_aborted`; no event is lost.
    boost::asio::awaitable<lifecycle> next(std::chrono::milliseconds timeout = no_deadline);

    /// The next buffered event, if any, without waiting.
    std::optional<lifecycle> try_next();

    /// Events dropped because the buffer (`client_options::event_buffer`) was full.
    std::uint64_t lost() const noexcept;

    /// The daemon's id for this registration.
    std::int32_t callback_id() const noexcept;

    /// Deregisters with the daemon (CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY)
    /// and stops delivery. Throws as `client::call`; a connection that has
    /// ended already is not an error.
    boost::asio::awaitable<void> close();

private:
    friend class client;
    explicit lifecycle_events(std::shared_ptr<detail::event_sink> s);
    std::shared_ptr<detail::event_sink> s_;
};

} // namespace localvm::libvirt
