// A bounded console log: QEMU's chardev `logfile=` writes into a FIFO, and
// the supervisor of the QEMU process copies it into a log that rotates (see
// `process::detached_options::drain_log`). Here: the names of its files, the
// rotation rule, and the wait for the copy to be complete.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

namespace localvm::console {

/// The FIFO a log's drainer (the supervisor of the QEMU that writes it)
/// reads: "<log>.fifo". Give it to QEMU as the
/// chardev's `logfile=`.
std::filesystem::path drain_fifo(const std::filesystem::path& log);

/// Where a log's previous part goes when it is rotated: "<log>.1".
std::filesystem::path rotated_log(const std::filesystem::path& log);

/// The rotation decision, pure: how many bytes of `chunk` still go into a
/// file that holds `size` bytes, so that it never exceeds `limit`. All of
/// `chunk` when it fits; otherwise up to and including the last '\n' that
/// fits, or exactly what fits when no '\n' does (a line longer than the room
/// left is cut). 0 means: rotate first. `limit` 0 counts as 1.
std::size_t rotation_split(std::uint64_t size, std::uint64_t limit, std::string_view chunk);

/// Waits until the drainer of `log` (if it has one) is done: its FIFO is
/// gone, so everything its writer wrote is in the log. Returns true at once
/// when `log` has no drainer FIFO, false when `timeout` passes first. Use it
/// after QEMU exited, before reading the log's last lines. No polling: it
/// wakes on the directory's inotify events. Never throws (but
/// std::bad_alloc and cancellation: operation_aborted).
boost::asio::awaitable<bool> wait_drained(const std::filesystem::path& log,
                                          std::chrono::milliseconds timeout);

} // namespace localvm::console
