// Internal: the guest clock right after a snapshot restore. The restored
// guest's clock reads the time of the save (its clocksource state was
// saved with it), so `start` of a clone sets it to the host's time through
// the guest agent when the guest has one: QEMU says whether the agent's
// virtio-serial port is open in the guest with a VSERPORT_CHANGE event for
// every port right after `cont` of a restored machine (virtio-serial's
// post-load step), so a guest without an agent costs no agent deadline.
#pragma once

#include <localvm/qemu/arguments.hpp>
#include <localvm/qga/client.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/qmp/protocol.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::qemu::detail {

/// What a QMP event says about the agent's port: its `open` for a
/// VSERPORT_CHANGE event naming `agent_port_device_id`; nothing for any other
/// event or a malformed one.
std::optional<bool> agent_port_open(const qmp::event& e);

/// What happened to the guest clock: the detail of `boot_stage::guest_clock`.
struct clock_outcome {
    bool set = false;   ///< The agent set the clock.
    std::string detail; ///< For people: what was done, or why not.
};

/// Sets the guest clock to the host's time through `agent`: `guest-ping`
/// (with the resync a new connection needs), then `guest-set-time` with the
/// host's system clock read right before the request, all within
/// `timeout`. Never throws but for cancellation (`operation_aborted`): a
/// failure is an outcome with the agent's error.
boost::asio::awaitable<clock_outcome> set_clock_through_agent(qga::client& agent,
                                                              std::chrono::milliseconds timeout);

/// Right after `cont` of a restored VM: takes from `port_events` (a
/// subscription to VSERPORT_CHANGE made before `cont`) QEMU's word on the
/// agent's port, waiting at most `port_timeout`; when the port is open,
/// connects to the agent at unix socket `agent_socket` and sets the clock
/// as `set_clock_through_agent`, all within `agent_timeout`.
/// Never throws but for cancellation: no word, a closed port or a failure
/// is an outcome that says so.
boost::asio::awaitable<clock_outcome>
set_clock_after_restore(qmp::subscription& port_events, std::string agent_socket,
                        std::chrono::milliseconds port_timeout,
                        std::chrono::milliseconds agent_timeout);

/// A restored VM's clock still to set, as bring-up leaves it right after
/// `cont`: the monitor connection whose `port_events` (VSERPORT_CHANGE,
/// subscribed before `cont`) hold QEMU's word on the agent's port, and the
/// arguments of `set_clock_after_restore`. `start` sets it before it
/// returns; `start_and_wait_ready` while it waits for SSH.
struct pending_clock {
    pending_clock(qmp::client c, qmp::subscription events, std::string socket,
                  std::chrono::milliseconds port, std::chrono::milliseconds agent)
        : client(std::move(c)), port_events(std::move(events)), agent_socket(std::move(socket)),
          port_timeout(port), agent_timeout(agent) {}
    qmp::client client;
    qmp::subscription port_events;
    std::string agent_socket;
    std::chrono::milliseconds port_timeout;
    std::chrono::milliseconds agent_timeout;
};

} // namespace localvm::qemu::detail
