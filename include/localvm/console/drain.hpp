// A bounded console log: QEMU's chardev `logfile=` writes into a FIFO, and a
// small drainer process copies it into a log that rotates.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

#include <sys/types.h>

namespace localvm::console {

/// Knobs of `log_drainer`.
struct drain_options {
    /// The log is rotated (renamed to `rotated_log(log)`, replacing the one
    /// before) instead of growing past this many bytes, so the console takes
    /// at most twice this on disk. Rotation happens after a '\n' when one
    /// fits. Default 1 MiB; at least 1.
    std::uint64_t rotate_bytes = 1024 * 1024;
    /// How long the drainer waits for a writer (QEMU) to open its FIFO
    /// before it gives up and exits. Default 5 minutes.
    std::chrono::milliseconds connect_timeout = std::chrono::minutes(5);
};

/// The FIFO a log's drainer reads: "<log>.fifo". Give it to QEMU as the
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

namespace detail {
struct drain_start;
}

/// The drainer of one console log. `start` makes a fresh FIFO and a fresh,
/// empty log (removing the rotated part of an earlier run), then starts a
/// process (not our child) that holds the FIFO's read end and copies what its writer
/// writes into the log, rotating it at `rotate_bytes`. The drainer outlives
/// its starter: it exits once its writer has closed the FIFO (QEMU exited)
/// and all was copied, then removes the FIFO. It never stalls its writer
/// for the disk: a failed write (ENOSPC, after dropping the rotated part to
/// make room) loses that output and goes on.
///
/// Until `release`, the drainer also watches a pipe from this object: when
/// the object is destroyed without `release` (starting QEMU threw) or the
/// starting process dies (killed mid-start: its QEMU is killed too, see
/// `process::detached_process`), the drainer exits by itself, whether or not
/// its writer ever came. Call `release` before committing the QEMU it
/// serves. Movable, not copyable.
///
/// The drainer is localvm's helper program `localvm-console`, spawned
/// without a fork of this process: it holds none of this process's memory
/// (a fork would keep a copy-on-write image of it as long as the VM runs,
/// and copying a large process's page tables takes time). It is found as
/// `process::detached_options::exit_status_file` says for the supervisor:
/// <prefix>/<libexecdir>/localvm, or `LOCALVM_LIBEXECDIR`.
class log_drainer {
public:
    /// Starts the drainer of `log`. Throws `localvm::error`:
    /// `errc::io_error` naming a FIFO or log that cannot be made,
    /// `errc::not_found` naming the helper program when it is missing
    /// (nothing is made then), `errc::process_failed` when it cannot be
    /// started. Blocks the thread until the drainer has said its pid.
    static log_drainer start(const std::filesystem::path& log, drain_options options = {});

    /// As `start`, but the wait until the drainer has started and said its
    /// pid (it must be scheduled: milliseconds on a loaded machine) happens
    /// on the caller's io_context instead of blocking the thread, so that
    /// many starts overlap. Same errors. Cancellation completes with
    /// operation_aborted; the drainer, if it started, then exits by itself
    /// (as when a `log_drainer` is destroyed unreleased).
    static boost::asio::awaitable<log_drainer> launch(std::filesystem::path log,
                                                      drain_options options = {});

    /// A drainer whose helper is spawned, its pid still to come: what
    /// `begin` returns. Destroying it before `started` completes is as
    /// destroying an unreleased `log_drainer`: the drainer exits by itself.
    class pending {
    public:
        pending(pending&&) noexcept;
        pending& operator=(pending&&) noexcept;
        ~pending();
        /// Waits on the caller's io_context until the drainer has said its
        /// pid: the rest of `launch`, with its errors and cancellation. Call
        /// it once.
        boost::asio::awaitable<log_drainer> started();

    private:
        friend class log_drainer;
        explicit pending(std::unique_ptr<detail::drain_start> st) noexcept;
        std::unique_ptr<detail::drain_start> st_;
    };
    /// The first half of `launch`, synchronous and brief: when it returns,
    /// the FIFO and the log are made and the helper is spawned, so the
    /// writer may be started (QEMU may open the FIFO) before `started` is
    /// awaited, and the two starts overlap. Throws what `start` throws
    /// before its wait (`errc::io_error`, `errc::not_found`,
    /// `errc::process_failed`).
    static pending begin(const std::filesystem::path& log, drain_options options = {});

    log_drainer(log_drainer&&) noexcept;
    log_drainer& operator=(log_drainer&&) noexcept;
    log_drainer(const log_drainer&) = delete;
    log_drainer& operator=(const log_drainer&) = delete;
    ~log_drainer();

    /// The drainer's pid.
    pid_t pid() const noexcept { return pid_; }
    /// The FIFO it reads (`drain_fifo(log)`).
    const std::filesystem::path& fifo() const noexcept { return fifo_; }

    /// Leaves the drainer to its writer (QEMU runs): from here it ends only
    /// when its writer closes the FIFO, and destroying this object or the
    /// death of this process does nothing to it.
    void release() noexcept;

    /// For a start that failed after its writer was stopped: tells the
    /// drainer that no writer will come, waits up to `grace` for it to copy
    /// what is left and exit, then kills it (SIGKILL) and waits up to 5 s for
    /// that. The waits are on the caller's io_context, which goes on running
    /// other work meanwhile (normally a few milliseconds: the drainer is only
    /// copying what is left). This object must outlive the call. Throws
    /// nothing but std::bad_alloc (a wait that cannot be set up kills the
    /// drainer at once). Cancellation: the drainer is killed (SIGKILL) at
    /// once and the call ends with operation_aborted; a cancelled start that
    /// must clean up resets its cancellation state first. After it, the
    /// drainer is released as by `release` (destruction does nothing more).
    boost::asio::awaitable<void> finish(std::chrono::milliseconds grace);

private:
    log_drainer(pid_t pid, int pidfd, int control, std::filesystem::path fifo) noexcept;
    void poke() const noexcept;

    pid_t pid_ = -1;
    int pidfd_ = -1;
    int control_ = -1; ///< Write end of the drainer's starter pipe, until released.
    std::filesystem::path fifo_;
};

/// Waits until the drainer of `log` (if it has one) is done: its FIFO is
/// gone, so everything its writer wrote is in the log. Returns true at once
/// when `log` has no drainer FIFO, false when `timeout` passes first. Use it
/// after QEMU exited, before reading the log's last lines. Never throws (but
/// std::bad_alloc and cancellation: operation_aborted).
boost::asio::awaitable<bool> wait_drained(const std::filesystem::path& log,
                                          std::chrono::milliseconds timeout);

} // namespace localvm::console
