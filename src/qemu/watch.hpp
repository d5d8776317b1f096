// Small system helpers of the QEMU backend.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <optional>

#include <sys/types.h>

namespace localvm::qemu::detail {

/// Waits until `path` exists, with inotify on its directory (no polling).
/// Returns false when `timeout` passes first. Cancellation: operation_aborted.
boost::asio::awaitable<bool> wait_for_path(std::filesystem::path path,
                                           std::chrono::milliseconds timeout);

/// The pid of the process holding a write lock on `pidfile` (QEMU holds one
/// on its -pidfile for its whole life), or nullopt when none does. A
/// symbolic link or anything but a regular file there is `errc::unsupported`.
std::optional<pid_t> lock_owner(const std::filesystem::path& pidfile);

} // namespace localvm::qemu::detail
