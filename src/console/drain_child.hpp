// Internal: the copying half of a drained console log, what a detached
// process's supervisor (src/process/supervisor.cpp, in the helper program
// `localvm-supervise`) does with QEMU's console output: reads it from a FIFO
// and appends it to a log that rotates. Plain system calls on memory
// prepared beforehand: no allocation, no exceptions, no asio (the helper
// links no C++ runtime).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <sys/types.h>

namespace localvm::console::detail {

/// What the copy works on. Paths are absolute.
struct drain_plan {
    const char* log = nullptr;     ///< The log (`process::detached_options::drain_log`).
    const char* rotated = nullptr; ///< `rotated_log(log)`.
    const char* fifo = nullptr;    ///< `drain_fifo(log)`.
    std::uint64_t limit = 1;       ///< Rotate at this many bytes (>= 1).
};

/// `console::rotation_split` (see drain.hpp), here for the helper, which
/// includes no public header (they bring asio).
std::size_t rotation_split(std::uint64_t size, std::uint64_t limit,
                           std::string_view chunk) noexcept;

/// Opens (creates, truncates) `p.log`: -1 with errno on failure.
int open_drain_log(const drain_plan& p) noexcept;

/// A FIFO being copied into its log. The FIFO's read end `in` is
/// non-blocking; `hold` is a write end of the same FIFO that the copier
/// keeps (and never writes to), so that writers coming and going (QEMU, a
/// `wait_drained` look) never make it see end of file: the copy ends when
/// its owner says so (`drain_finish`), not at a writer's close.
struct drain_state {
    drain_plan plan;
    int in = -1;
    int hold = -1;
    int log_fd = -1;
    std::uint64_t size = 0; ///< Bytes in the current log file.
    dev_t fifo_dev = 0;     ///< The FIFO's identity, taken from `in`: a
    ino_t fifo_ino = 0;     ///< later run's FIFO at the same path is not ours.
};

/// Removes the FIFO at `fifo` if it is still the one with this identity
/// (not a later run's, made at the same path since). Async-signal-safe.
void remove_fifo_if_same(const char* fifo, dev_t dev, ino_t ino) noexcept;

/// Takes `in`'s identity (fstat) into `s`. Call once, before the copy.
void drain_begin(drain_state& s) noexcept;

/// One read of what the FIFO holds (up to 64 KiB), appended to the log,
/// rotating it (`rotation_split`) so that no file passes `plan.limit`.
/// Never stalls for long on the disk: a write that fails (ENOSPC, after
/// dropping the rotated part to make room once) loses that output and the
/// copy goes on. Returns the bytes read; 0 when there was nothing to read.
std::size_t drain_once(drain_state& s) noexcept;

/// The writer is gone: copies what is left, removes the FIFO unless a later
/// run made a new one at its path, then closes every fd of `s` (in that
/// order: no moment with the FIFO there and no reader, which `wait_drained`
/// takes for the end).
void drain_finish(drain_state& s) noexcept;

} // namespace localvm::console::detail
