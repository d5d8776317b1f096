// Internal: the console drainer itself, the process that copies QEMU's
// console output from a FIFO into a rotating log. It runs in localvm's
// helper program `localvm-console` (src/libexec), exec'd so that it holds
// none of its starter's memory. Plain system calls on memory prepared
// beforehand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace localvm::console::detail {

/// What the drainer works on. Paths are absolute.
struct drain_plan {
    const char* log = nullptr;     ///< The log (`log_drainer::start`'s argument).
    const char* rotated = nullptr; ///< `rotated_log(log)`.
    const char* fifo = nullptr;    ///< `drain_fifo(log)`.
    std::uint64_t limit = 1;       ///< Rotate at this many bytes (>= 1).
    int connect_timeout_ms = 0;    ///< How long to wait for the writer.
};

/// `console::rotation_split` (see drain.hpp), here for the drainer, which
/// includes no public header (they bring asio).
std::size_t rotation_split(std::uint64_t size, std::uint64_t limit,
                           std::string_view chunk) noexcept;

/// Opens (creates, truncates) `p.log` for the drainer: -1 with errno on failure.
int open_drain_log(const drain_plan& p) noexcept;

/// The drainer: holds only fds 0..2 (/dev/null), `in` (the FIFO's read end,
/// non-blocking), `log_fd` (the log, open), `report_fd` and `control`; sits
/// in "/". Writes its pid (a pid_t) to `report_fd` and closes it, then copies
/// `in` into the log, rotating it at `p.limit`, until the writer closes the
/// FIFO. `control` is the read end of the starter's socket: an 'R' byte
/// releases the drainer to its writer; its end without one means the start
/// was given up (copy what is there, then end); no writer within
/// `p.connect_timeout_ms` ends it too. Removes the FIFO at the end (unless
/// a later start made a new one there). Never returns.
[[noreturn]] void drain(const drain_plan& p, int in, int log_fd, int report_fd,
                        int control) noexcept;

} // namespace localvm::console::detail
