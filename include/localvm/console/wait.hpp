// Waiting for text on the serial console, by following its log file.
#pragma once

#include <localvm/wait.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <regex>
#include <string>
#include <string_view>

namespace localvm::console {

/// What a console line must contain: a substring (implicitly, from a
/// string) or a `std::regex` searched in the line (`std::regex_search`).
/// Lines are tested after `clean_line`, so colour codes do not get in the way.
class text_matcher {
public:
    /// Matches lines containing `substring` (an empty one matches any line).
    text_matcher(std::string substring);
    /// Matches lines containing `substring`.
    text_matcher(const char* substring);
    /// Matches lines where `re` is found; `description` names it in errors.
    text_matcher(std::regex re, std::string description = "a regular expression");
    /// Compiles `pattern` (ECMAScript). Throws `localvm::error`
    /// (`errc::invalid_argument`) when it is not a valid regex.
    static text_matcher regex(const std::string& pattern);

    /// True when `line` matches.
    bool matches(std::string_view line) const;
    /// For diagnostics, e.g. `"login:"` or `regex /login: *$/`.
    const std::string& description() const noexcept { return description_; }

private:
    std::function<bool(std::string_view)> test_;
    std::string description_;
};

using localvm::abort_hook; ///< See localvm/wait.hpp.

/// Knobs for `wait_for_console`.
struct wait_options {
    /// Where to start in the log: a byte offset, or `console_log::end` for
    /// output appended after the wait began. Default 0: the whole file. A log
    /// that keeps earlier boots (QEMU's `logappend=on` straight into a file)
    /// needs the file size recorded before starting QEMU (or
    /// `console_log::end`) to ignore them; the backend's drained log starts
    /// afresh with each run.
    std::uint64_t start_offset = 0;
    /// Also test the unfinished last line (text after the last '\n'), so a
    /// prompt like "login: " that waits for input matches. A matcher that
    /// also matches a prefix of the wanted line may then match early; set
    /// false to test complete lines only. Default true.
    bool match_partial_line = true;
    /// How many log lines (see `read_tail`) to put in error diagnostics.
    /// Default 20.
    std::size_t tail_lines = 20;
};

/// Waits until a line of the console log `log` matches `matcher` and returns
/// that line (cleaned, without newline). Follows the file with inotify (see
/// `console_log`): the log may not exist yet, may be appended to by QEMU
/// while a user is attached to the console, truncated or replaced. Never
/// touches the console socket.
///
/// Throws `localvm::error`: `errc::timeout` when `timeout` passes first and
/// `errc::guest_died` when `abort` (if set) completes first (the file is
/// read once more before giving up, after waiting up to 2 s for the log's
/// drainer, if it has one, to finish: text written just before QEMU died
/// still matches), with the hook's diagnostic; both diagnostics name the
/// log, the matcher and carry the last lines of the log. `errc::not_found` when the log's directory does not
/// exist, `errc::io_error` when reading fails. Cancellation stops the wait
/// and the hook and completes with `boost::asio::error::operation_aborted`.
boost::asio::awaitable<std::string>
wait_for_console(std::filesystem::path log, text_matcher matcher, std::chrono::milliseconds timeout,
                 abort_hook abort = {}, wait_options options = wait_options());

} // namespace localvm::console
