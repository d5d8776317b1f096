// Internal: a libvirt domain's console stream read as console lines, for
// `libvirt::manager`'s wait_ready and wait_for_console (which work over a
// remote connection, where the console log file is not readable).
#pragma once

#include <localvm/console/lines.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/libvirt/stream.hpp>
#include <localvm/output.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::libvirt::detail {

/// The pure part: console bytes in, lines out (`console::line_splitter`),
/// each complete line handed to `echo` as "console: LINE", the last `keep`
/// non-blank ones kept for diagnostics, and matching. No I/O.
class console_scan {
public:
    explicit console_scan(line_sink echo = {}, std::size_t keep = 20);

    /// Feeds `data`; returns the first line it completes that `matcher`
    /// matches, else (with `partial`) the unfinished last line when it
    /// matches, else nullopt. Every line of `data` is echoed and kept, also
    /// those after a match; an unfinished line that matches is echoed too
    /// (the caller's wait ends with it, so it would never complete here).
    /// A null `matcher` matches nothing.
    std::optional<std::string> feed(std::string_view data, const console::text_matcher* matcher,
                                    bool partial);

    /// The kept lines and a non-blank unfinished line, joined with '\n'
    /// (no trailing newline); "" when none.
    std::string tail() const;

private:
    line_sink echo_;
    std::size_t keep_;
    console::line_splitter splitter_;
    std::deque<std::string> kept_;
};

/// Reads `s` into `scan` until a fed chunk matches (`console_scan::feed`)
/// and returns that line; nullopt once the stream ended, cleanly or with
/// the daemon's error (the domain stopped, or another client took the
/// console by force). Throws `errc::libvirt_closed` when the connection
/// ended. Cancellation: throws `operation_aborted`.
boost::asio::awaitable<std::optional<std::string>>
read_console(stream& s, console_scan& scan, const console::text_matcher* matcher, bool partial);

} // namespace localvm::libvirt::detail
