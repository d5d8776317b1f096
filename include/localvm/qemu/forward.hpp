// Port forwards written as text, as on a command line or in a config file.
#pragma once

#include <localvm/manager.hpp>

#include <boost/system/error_code.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace localvm::qemu {

/// Parses a forward written `[HOST_ADDRESS:]HOST_PORT:GUEST_PORT` or just
/// `GUEST_PORT`: "127.0.0.1:2222:22", "2222:22", "22". The host address is an
/// IPv4 literal (default "127.0.0.1"), the host port 0..65535 (default 0:
/// QEMU picks a free one), the guest port 1..65535; ports are decimal
/// without sign. Returns nullopt and sets `ec` to `errc::invalid_argument`
/// for anything else. Pure.
std::optional<port_forward> parse_port_forward(std::string_view text,
                                               boost::system::error_code& ec);

/// Writes `f` as "HOST_ADDRESS:HOST_PORT:GUEST_PORT" (what parse_port_forward reads).
std::string format_port_forward(const port_forward& f);

} // namespace localvm::qemu
