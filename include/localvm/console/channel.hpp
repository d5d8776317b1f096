// Attaching a terminal to a console that is not a socket on this host: a
// byte channel of two awaitable calls (a libvirt domain's console stream,
// which works over a remote connection too).
#pragma once

#include <localvm/console/serial.hpp>

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <optional>
#include <string>

namespace localvm::console {

/// A two-way console as two awaitable calls.
struct byte_channel {
    /// The next bytes from the console; nullopt once it ended (the VM
    /// closed it). May throw `localvm::error`, which ends the session.
    std::function<boost::asio::awaitable<std::optional<std::string>>()> read;
    /// Sends bytes to the console; false once it has ended.
    std::function<boost::asio::awaitable<bool>(std::string)> write;
};

/// `attach` (serial.hpp) on a `byte_channel`: the same terminal handling
/// (raw mode, escape byte, hint, fds restored) and the same ends,
/// `vm_closed` when `read` gives nullopt or `write` false. Throws
/// `errc::invalid_argument` for a bad fd, `errc::io_error` when the terminal
/// fails, and what the channel throws. Cancellation as `attach`.
boost::asio::awaitable<attach_end> attach(byte_channel channel,
                                          attach_options options = attach_options());

} // namespace localvm::console
