// The guest clock after a snapshot restore (see guest_clock.hpp).
#include "guest_clock.hpp"

#include <localvm/error.hpp>
#include <localvm/qga/client.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>

#include "detail/await.hpp"

namespace localvm::qemu::detail {
namespace asio = boost::asio;
using std::chrono::milliseconds;

namespace {

// Cancellation goes on; anything else is an outcome naming it.
clock_outcome not_set(const std::string& why) {
    return clock_outcome{false, "not set: " + why};
}

bool cancelled(const boost::system::system_error& e) {
    return e.code() == asio::error::operation_aborted;
}

} // namespace

std::optional<bool> agent_port_open(const qmp::event& e) {
    if (e.name != "VSERPORT_CHANGE")
        return std::nullopt;
    const auto* id = e.data.if_contains("id");
    const auto* open = e.data.if_contains("open");
    if (!id || !id->is_string() || id->get_string() != agent_port_device_id || !open ||
        !open->is_bool())
        return std::nullopt;
    return open->get_bool();
}

asio::awaitable<clock_outcome> set_clock_through_agent(qga::client& agent, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    try {
        // The ping first: it carries the resync (a round trip) that would
        // otherwise delay the request after the time is read.
        co_await agent.ping(timeout);
        // The host's time as late as possible: the guest's clock ends up
        // behind by the time the request takes to reach the agent, no more.
        const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now().time_since_epoch());
        co_await agent.set_time(now, localvm::detail::time_left(deadline));
    } catch (const boost::system::system_error& e) {
        if (cancelled(e))
            throw;
        co_return not_set(std::string("the guest agent failed: ") + e.what());
    }
    co_return clock_outcome{true, "set to the host's time through the guest agent"};
}

asio::awaitable<clock_outcome> set_clock_after_restore(qmp::subscription& port_events,
                                                       std::string agent_socket,
                                                       milliseconds port_timeout,
                                                       milliseconds agent_timeout) {
    const auto deadline = std::chrono::steady_clock::now() + port_timeout;
    std::optional<bool> open;
    try {
        while (!open) {
            if (deadline <= std::chrono::steady_clock::now())
                throw_error(errc::timeout, "no VSERPORT_CHANGE event");
            open = agent_port_open(co_await port_events.next(localvm::detail::time_left(deadline)));
        }
    } catch (const boost::system::system_error& e) {
        if (cancelled(e))
            throw;
        co_return not_set("QEMU did not say within " + std::to_string(port_timeout.count()) +
                          " ms whether the guest agent's port is open (" + e.what() + ")");
    }
    if (!*open)
        co_return not_set("no guest agent has its port open; the clock reads the time of the "
                          "save");
    const auto agent_deadline = std::chrono::steady_clock::now() + agent_timeout;
    std::optional<qga::client> agent;
    try {
        qga::client_options co;
        co.connect_timeout = agent_timeout;
        agent.emplace(co_await qga::client::connect(agent_socket, co));
    } catch (const boost::system::system_error& e) {
        if (cancelled(e))
            throw;
        co_return not_set(std::string("cannot reach the guest agent: ") + e.what());
    }
    const auto left =
        std::chrono::duration_cast<milliseconds>(agent_deadline - std::chrono::steady_clock::now());
    co_return co_await set_clock_through_agent(*agent, std::max(left, milliseconds(1)));
}

} // namespace localvm::qemu::detail
