// The serial console's boot log: the file QEMU's chardev `logfile=` writes,
// directly or through the drainer that rotates it (drain.hpp).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::console {

/// The last `max_lines` non-blank lines of the console log `log`, joined
/// with '\n' (no trailing newline), for diagnostics ("the tail of the serial
/// console"). Lines are cleaned like `console_log`'s: '\r' removed, terminal
/// escape sequences and other control bytes dropped, invalid UTF-8 replaced
/// by '?'. A final line without '\n' counts. When the log holds fewer lines,
/// they are preceded by those of its rotated part (`rotated_log(log)`), a
/// line cut by the rotation joined again. A missing or unreadable file, or
/// `max_lines == 0`, gives "". Reads at most the last 4 MiB. Never throws
/// (except std::bad_alloc).
std::string read_tail(const std::filesystem::path& log, std::size_t max_lines);

/// Cleans one raw console line for matching and display: drops '\r', ANSI
/// escape sequences (CSI, OSC, two-byte ESC) and other control bytes except
/// '\t', and replaces invalid UTF-8 by '?'. `raw` excludes the '\n'.
std::string clean_line(std::string_view raw);

/// Follows a console log file and yields its lines as they are appended,
/// waiting with inotify (no polling). It follows the *path*: a file that does
/// not exist yet is picked up once created; a file that shrinks (truncated)
/// is read again from the start; a file replaced by a new one (a different
/// inode at the path) is read to its end, then the new one from its start.
/// A file the drainer rotated (drain.hpp) goes on in the new one (a cut line
/// continues); when the reader fell two rotations behind, the rotated part
/// (`rotated_log(file)`) is read before the new file. Lines are split
/// on '\n' and cleaned with `clean_line`; a line longer than 64 KiB is cut.
/// Never touches the console socket, so it works while someone is attached.
///
/// Not thread-safe; use from one strand. `wait_change` must not overlap
/// itself. Movable, not copyable.
class console_log {
public:
    /// Pass as `start_offset` to skip what the file holds now: only output
    /// appended later is yielded ("only new output").
    static constexpr std::uint64_t end = std::numeric_limits<std::uint64_t>::max();

    /// Follows `file` from byte `start_offset` (default 0: the whole file;
    /// `end`: the current end, or 0 when the file does not exist yet). Only
    /// opens the file when it exists. Does not throw for a missing file.
    explicit console_log(std::filesystem::path file, std::uint64_t start_offset = 0);
    ~console_log();
    console_log(console_log&&) noexcept;
    console_log& operator=(console_log&&) noexcept;

    /// Reads what was appended since the last call, without waiting, and
    /// returns the lines it completed (at most about 1 MiB of file per call;
    /// see `caught_up`). A missing file yields nothing. Throws
    /// `localvm::error` (`errc::io_error`) when reading fails.
    std::vector<std::string> read_lines();

    /// True when the last `read_lines` reached the end of the file.
    bool caught_up() const noexcept;

    /// The text after the last '\n' read so far (a prompt like "login: "
    /// waiting for input), cleaned; "" when none.
    std::string partial_line() const;

    /// The most recent non-blank line, the partial one included; "" when
    /// none yet (for a status bar). Call `read_lines` to refresh.
    std::string latest_line() const;

    /// Bytes of the current file consumed so far (including a partial line).
    std::uint64_t offset() const noexcept;

    /// The followed path.
    const std::filesystem::path& file() const noexcept;

    /// Waits until the file may have changed (written, created, truncated,
    /// replaced), on inotify watches of the file and of its directory. The
    /// first call only sets the watches up and returns at once, so that
    /// `read_lines(); co_await wait_change();` in a loop loses nothing.
    /// Spurious wake-ups happen (another file in the directory changed).
    /// Throws `localvm::error`: `errc::not_found` when the directory does not
    /// exist, `errc::io_error` when inotify fails. Cancellation completes
    /// with `boost::asio::error::operation_aborted`; the object stays usable.
    boost::asio::awaitable<void> wait_change();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace localvm::console
