#include "progress.hpp"

#include <localvm/console/log.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/ioctl.h>
#include <unistd.h>

namespace localvm::cli {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

std::size_t terminal_width() {
    winsize ws{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

namespace {

// What the command waits for once a stage has happened.
std::string next_activity(std::string_view stage) {
    if (stage == "qemu-spawned")
        return "QEMU spawned, connecting to its monitor";
    if (stage == "qmp-ready")
        return "QMP ready, reading the port forwards";
    if (stage == "guest-running")
        return "booting, waiting for SSH";
    if (stage == "ssh-banner")
        return "SSH answers, logging in";
    if (stage == "ssh-login")
        return "SSH works";
    if (stage == "kvm-fallback")
        return "KVM failed, restarting QEMU under TCG";
    return std::string(stage);
}

} // namespace

progress::progress(std::string vm, verbosity level, bool tty, clock::time_point t0)
    : level_(level)
    , tty_(tty)
    , t0_(t0) {
    timeline_.vm = std::move(vm);
}

std::chrono::milliseconds progress::elapsed() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0_);
}

void progress::print_line(const std::string& text) {
    if (tty_ && drawn_)
        std::fputs("\r\033[K", stderr);
    drawn_ = false;
    // Console lines, QEMU's stderr, the SSH banner: guest text.
    std::fputs((terminal_safe(text) + "\n").c_str(), stderr);
    redraw();
}

void progress::stage(std::string_view word, std::string_view detail) {
    auto ms = elapsed();
    timeline_.entries.push_back(
        {std::string(word), static_cast<double>(ms.count()) / 1000.0, std::string(detail)});
    if (word != "console-output") // the boot goes on: keep saying what is awaited
        activity_ = next_activity(word);
    if (level_ == verbosity::quiet)
        return;
    if (tty_ && level_ == verbosity::normal) {
        redraw();
        return;
    }
    print_line(status_line(
        ms, std::string(word) + (detail.empty() ? "" : " ") + std::string(detail), {}, 100000));
}

void progress::activity(std::string text) {
    activity_ = std::move(text);
    if (level_ == verbosity::quiet)
        return;
    if (tty_)
        redraw();
    else if (level_ == verbosity::verbose)
        print_line(status_line(elapsed(), activity_, {}, 100000));
}

void progress::console_line(const std::string& line) {
    if (line.find_first_not_of(" \t") == std::string::npos)
        return;
    if (!console_seen_) {
        console_seen_ = true;
        stage("console-output", {});
    }
    if (level_ == verbosity::verbose)
        print_line("console: " + line);
}

void progress::console_latest(std::string text) {
    console_ = std::move(text);
}

void progress::message(std::string_view line) {
    if (level_ == verbosity::verbose)
        print_line(std::string(line));
}

void progress::redraw() {
    if (!tty_ || finished_ || level_ == verbosity::quiet || activity_.empty())
        return;
    auto line = status_line(elapsed(), activity_, console_, terminal_width() - 1);
    std::fputs(("\r\033[K" + line).c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
}

void progress::finish() {
    if (tty_ && drawn_) {
        std::fputs("\r\033[K", stderr);
        std::fflush(stderr);
    }
    drawn_ = false;
    finished_ = true;
}

asio::awaitable<void> follow_console(progress& p, std::filesystem::path log) {
    auto ex = co_await asio::this_coro::executor;
    console::console_log follower(log, console::console_log::end);
    bool following = true;
    for (;;) {
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none)
            co_return;
        if (following) {
            try {
                for (const auto& line : follower.read_lines())
                    p.console_line(line);
                p.console_latest(follower.latest_line());
            } catch (const std::exception&) {
                following = false; // the display is best effort
            }
        }
        p.redraw();
        // Wake on console output; on a terminal also every 250 ms to update
        // the elapsed time.
        auto changed = [&]() -> asio::awaitable<void> {
            try {
                if (following)
                    co_await follower.wait_change();
                else
                    co_await asio::steady_timer(ex, asio::steady_timer::time_point::max())
                        .async_wait(asio::use_awaitable); // until cancelled
            } catch (const boost::system::system_error& e) {
                if (e.code() == asio::error::operation_aborted)
                    throw;
                following = false;
            }
        };
        if (p.tty()) {
            asio::steady_timer tick(ex, std::chrono::milliseconds(250));
            boost::system::error_code ec;
            co_await (changed() || tick.async_wait(asio::redirect_error(asio::use_awaitable, ec)));
        } else {
            co_await changed();
        }
    }
}

} // namespace localvm::cli
