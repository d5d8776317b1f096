// Feedback while the localvm command waits: one updating status line on a
// terminal, plain lines otherwise, and the boot timeline it records.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "cli.hpp"
#include "report.hpp"

namespace localvm::cli {

/// Columns of the terminal on stderr; 80 when it is not a terminal.
std::size_t terminal_width();

/// Records timeline entries and shows what is going on, on stderr.
class progress {
public:
    using clock = std::chrono::steady_clock;

    /// `tty`: stderr is a terminal (an updating line) or not (plain lines).
    progress(std::string vm, verbosity level, bool tty, clock::time_point t0);

    /// A boot stage happened: recorded in the timeline, shown.
    void stage(std::string_view word, std::string_view detail);
    /// What is being waited for now ("creating the disk", "stopping", ...).
    void activity(std::string text);
    /// A complete console line: the first one is the "console-output" stage.
    void console_line(const std::string& line);
    /// The latest console text (the partial line included) for the status line.
    void console_latest(std::string text);
    /// A lifecycle message from the library: shown with --verbose.
    void message(std::string_view line);
    /// Redraws the status line (terminal only).
    void redraw();
    /// Clears the status line for good.
    void finish();

    bool tty() const noexcept { return tty_; }
    const timeline& events() const noexcept { return timeline_; }

private:
    void print_line(const std::string& text);
    std::chrono::milliseconds elapsed() const;

    timeline timeline_;
    verbosity level_;
    bool tty_;
    bool drawn_ = false;
    bool finished_ = false;
    bool console_seen_ = false;
    clock::time_point t0_;
    std::string activity_;
    std::string console_;
};

/// Follows the console log `log` (only what is written from now on) and
/// feeds `p` until cancelled; on a terminal it also redraws every 250 ms for
/// the elapsed time. Never fails: a log it cannot follow just shows nothing.
boost::asio::awaitable<void> follow_console(progress& p, std::filesystem::path log);

} // namespace localvm::cli
