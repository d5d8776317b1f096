// The `image` command and `create|up --image`: the library's image fetch
// with a progress bar on a terminal, plain lines otherwise.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <filesystem>

#include "cli.hpp"
#include "progress.hpp"

namespace localvm::cli {

/// `image pull|list|rm`; returns the exit status.
boost::asio::awaitable<int> cmd_image(const invocation& i, progress& p);

/// The base image of `create`/`up`: `--base` as given, or `--image` fetched
/// into the cache (verified with `--sha256`/`--sha512` when given).
boost::asio::awaitable<std::filesystem::path> base_image(const invocation& i, progress& p);

} // namespace localvm::cli
