// A pseudo-terminal for tests that play a person at a terminal: the slave
// side is the terminal a program (or `console::attach`, or ssh) is given,
// the test types keys into the master and reads what appears there until a
// text shows up, each read with a deadline (no sleeps).
#pragma once

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>
#include <utility>

#include <pty.h>
#include <termios.h>
#include <unistd.h>

namespace lvtest {

/// An openpty pair, 24 rows by 80 columns. Closes what it still owns.
struct pty {
    int master = -1; ///< Usually handed to a stream_descriptor with `take_master`.
    int slave = -1;  ///< The user's terminal.

    pty() {
        winsize size{};
        size.ws_row = 24;
        size.ws_col = 80;
        if (::openpty(&master, &slave, nullptr, nullptr, &size) != 0)
            throw std::system_error(errno, std::generic_category(), "openpty");
    }
    ~pty() {
        close_master();
        close_slave();
    }
    pty(const pty&) = delete;
    pty& operator=(const pty&) = delete;

    /// Gives up the master fd (to a stream_descriptor, which closes it).
    int take_master() noexcept { return std::exchange(master, -1); }
    void close_master() noexcept {
        if (master >= 0)
            ::close(std::exchange(master, -1));
    }
    /// Once no slave fd is open, reads on the master fail (EIO).
    void close_slave() noexcept {
        if (slave >= 0)
            ::close(std::exchange(slave, -1));
    }
    /// The slave's terminal modes now.
    termios modes() const {
        termios t{};
        if (::tcgetattr(slave, &t) != 0)
            throw std::system_error(errno, std::generic_category(), "tcgetattr");
        return t;
    }
};

/// Same input, output, control and local modes (what raw mode changes).
inline bool same_modes(const termios& a, const termios& b) {
    return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
           a.c_lflag == b.c_lflag;
}

/// Reads `master` into `seen` until `needle` is in it; false when `limit`
/// passes first or the read fails (EIO: the slave side is closed).
inline boost::asio::awaitable<bool> read_until(boost::asio::posix::stream_descriptor& master,
                                               std::string& seen, std::string needle,
                                               std::chrono::milliseconds limit) {
    namespace asio = boost::asio;
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(co_await asio::this_coro::executor, limit);
    while (seen.find(needle) == std::string::npos) {
        char buf[512];
        boost::system::error_code ec, tec;
        auto r = co_await (master.async_read_some(asio::buffer(buf),
                                                  asio::redirect_error(asio::use_awaitable, ec)) ||
                           timer.async_wait(asio::redirect_error(asio::use_awaitable, tec)));
        if (r.index() == 1 || ec)
            co_return false;
        seen.append(buf, std::get<0>(r));
    }
    co_return true;
}

/// Writes `keys` to `master`, as typed ("\r" is Enter, "\x1d" Ctrl-]).
inline boost::asio::awaitable<void> type(boost::asio::posix::stream_descriptor& master,
                                         std::string keys) {
    co_await boost::asio::async_write(master, boost::asio::buffer(keys),
                                      boost::asio::use_awaitable);
}

} // namespace lvtest
