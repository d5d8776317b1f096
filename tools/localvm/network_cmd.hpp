// The `network` command: virtual networks through the library's
// qemu::virtual_network.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "cli.hpp"

namespace localvm::cli {

/// `network create|delete|list`; returns the exit status.
boost::asio::awaitable<int> cmd_network(const invocation& i);

} // namespace localvm::cli
