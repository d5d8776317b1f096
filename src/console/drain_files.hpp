// Internal: the files of a drained console log, made by the starter of a
// detached process (src/process/detached.cpp) before its supervisor, which
// copies the FIFO into the log (drain_child.hpp), is spawned.
#pragma once

#include "sys/fd.hpp"

#include <cstdint>
#include <filesystem>
#include <string>

#include <sys/types.h>

namespace localvm::console::detail {

/// A fresh FIFO and a fresh log for one run, and the fds the supervisor
/// gets: the FIFO's read end (non-blocking), a write end of it to hold, and
/// the log open for writing. Paths are absolute.
struct drain_files {
    std::string log;
    std::string rotated;
    std::string fifo;
    std::uint64_t limit = 1;
    sys::unique_fd in;
    sys::unique_fd hold;
    sys::unique_fd out;
    dev_t fifo_dev = 0;
    ino_t fifo_ino = 0;

    /// Removes the FIFO unless another was made at its path since (a start
    /// that failed before its supervisor took over). Never throws.
    void remove_fifo() const noexcept;
};

/// Makes the files of `log`, rotating at `rotate_bytes` (0 counts as 1): a
/// fresh FIFO `drain_fifo(log)` (an old one is removed: a drainer of an
/// earlier run still on it cannot take this run's output), opened both ways
/// without blocking, and a fresh, empty log (its rotated part removed: a
/// reader following the path sees a new file). Throws `errc::io_error`
/// naming the FIFO or log that cannot be made; the FIFO made is removed
/// again then.
drain_files make_drain_files(const std::filesystem::path& log, std::uint64_t rotate_bytes);

} // namespace localvm::console::detail
