// The `image` command and `create|up --image`: the library's image fetch
// with a progress bar on a terminal, plain lines otherwise.
#pragma once

#include <localvm/qemu/manager.hpp>

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

/// Creates `vm`'s disk overlay on its base image (`base_image`). With
/// `--image`, the VM then holds its own hard link to the cached image,
/// `DATA/base.img` (a copy when the cache is on another filesystem), and its
/// overlay points there: a later pull that replaces the cache entry (a new
/// release at the same URL) or `image rm` leaves the VM's base as it was,
/// and deleting the VM frees it. Throws as `manager::create`; when the
/// hard link or the rebase fails, the VM is removed again before the throw.
boost::asio::awaitable<void> create_vm(const invocation& i, qemu::manager& vm, progress& p);

} // namespace localvm::cli
