#include <localvm/console/serial.hpp>
#include <localvm/console/channel.hpp>
#include <localvm/error.hpp>

#include "detail/race.hpp"
#include "sys/errno.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <variant>

#include <fcntl.h>
#include <termios.h>

namespace localvm::console {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// Restores an fd's status flags: asio sets O_NONBLOCK on the open file
// description, which a dup shares with the caller's stdin.
struct flags_guard {
    int fd;
    int flags;
    explicit flags_guard(int f)
        : fd(f)
        , flags(::fcntl(f, F_GETFL)) {
        if (flags < 0)
            sys::throw_errno(errc::invalid_argument,
                             "attach: fd " + std::to_string(f) + " is not open", errno);
    }
    ~flags_guard() { ::fcntl(fd, F_SETFL, flags); }
    flags_guard(const flags_guard&) = delete;
    flags_guard& operator=(const flags_guard&) = delete;
};

// Raw mode for a terminal, and its exact termios back on every way out.
struct raw_mode_guard {
    int fd = -1;
    termios saved{};
    void enter(int f) {
        if (!::isatty(f) || ::tcgetattr(f, &saved) != 0)
            return;
        termios raw = saved;
        ::cfmakeraw(&raw);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        if (::tcsetattr(f, TCSANOW, &raw) != 0)
            sys::throw_errno(errc::io_error, "attach: putting the terminal in raw mode", errno);
        fd = f;
    }
    ~raw_mode_guard() {
        if (fd >= 0)
            ::tcsetattr(fd, TCSANOW, &saved);
    }
};

asio::posix::stream_descriptor dup_descriptor(const asio::any_io_executor& ex, int fd) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0)
        sys::throw_errno(errc::invalid_argument, "attach: cannot dup fd " + std::to_string(fd),
                         errno);
    asio::posix::stream_descriptor d(ex);
    error_code ec;
    d.assign(copy, ec);
    if (ec) {
        ::close(copy);
        throw_error(errc::io_error, "attach: fd " + std::to_string(fd) + ": " + ec.message());
    }
    return d;
}

[[noreturn]] void rethrow_io(const error_code& ec, const std::string& what) {
    if (ec == asio::error::operation_aborted)
        throw boost::system::system_error(ec);
    throw_error(errc::io_error, "attach: " + what + ": " + ec.message());
}

// EINVAL and ENOTCONN too: when QEMU exits while our connection still waits
// in its listen backlog (another client attached), the kernel drops the
// embryonic peer and our reads fail with EINVAL instead of EOF.
bool peer_gone(const error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::not_connected ||
           ec == asio::error::invalid_argument;
}

} // namespace

std::string attach_hint(std::string_view vm_name, std::string_view endpoint) {
    return "Connected to the " + std::string(endpoint) + " of " + std::string(vm_name) +
           "; Ctrl-] detaches.";
}

asio::awaitable<attach_end> attach(std::filesystem::path socket, attach_options options) {
    auto ex = co_await asio::this_coro::executor;
    asio::local::stream_protocol::endpoint endpoint;
    try {
        endpoint = asio::local::stream_protocol::endpoint(socket.string());
    } catch (const boost::system::system_error& e) {
        throw_error(errc::invalid_argument,
                    options.endpoint + " socket path " + socket.string() + ": " +
                        e.code().message());
    }
    // The fds first: a bad one is invalid_argument before anything connects.
    for (int fd : {options.input_fd, options.output_fd})
        if (::fcntl(fd, F_GETFL) < 0)
            sys::throw_errno(errc::invalid_argument,
                             "attach: fd " + std::to_string(fd) + " is not open", errno);
    asio::local::stream_protocol::socket sock(ex);
    error_code ec;
    co_await sock.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted)
        throw boost::system::system_error(ec);
    if (ec == boost::system::errc::no_such_file_or_directory ||
        ec == asio::error::connection_refused)
        throw_error(errc::not_running, "nothing listens on the " + options.endpoint +
                                           " socket " + socket.string() + " (" + ec.message() +
                                           ")");
    if (ec)
        throw_error(errc::io_error, "connecting to the " + options.endpoint + " socket " +
                                        socket.string() + ": " + ec.message());

    const std::string endpoint_name = options.endpoint;
    byte_channel channel;
    channel.read = [&sock, endpoint_name]() -> asio::awaitable<std::optional<std::string>> {
        std::string buf(4096, '\0');
        error_code rec;
        auto n = co_await sock.async_read_some(asio::buffer(buf),
                                               asio::redirect_error(asio::use_awaitable, rec));
        if (peer_gone(rec))
            co_return std::nullopt;
        if (rec)
            rethrow_io(rec, "reading the " + endpoint_name + " socket");
        buf.resize(n);
        co_return buf;
    };
    channel.write = [&sock, endpoint_name](std::string data) -> asio::awaitable<bool> {
        error_code rec;
        co_await asio::async_write(sock, asio::buffer(data),
                                   asio::redirect_error(asio::use_awaitable, rec));
        if (peer_gone(rec))
            co_return false;
        if (rec)
            rethrow_io(rec, "writing to the " + endpoint_name + " socket");
        co_return true;
    };
    co_return co_await attach(std::move(channel), std::move(options));
}

asio::awaitable<attach_end> attach(byte_channel channel, attach_options options) {
    auto ex = co_await asio::this_coro::executor;
    flags_guard in_flags(options.input_fd);
    flags_guard out_flags(options.output_fd);
    error_code ec;

    // Declared before the descriptors: they close first, then flags and
    // termios come back.
    raw_mode_guard raw;
    if (options.raw_mode)
        raw.enter(options.input_fd);
    auto in = dup_descriptor(ex, options.input_fd);
    auto out = dup_descriptor(ex, options.output_fd);

    if (!options.hint.empty()) {
        auto line = options.hint + "\r\n";
        co_await asio::async_write(out, asio::buffer(line),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec)
            rethrow_io(ec, "writing to the terminal");
    }

    auto to_terminal = [&]() -> asio::awaitable<void> {
        for (;;) {
            auto data = co_await channel.read();
            if (!data)
                co_return;
            error_code rec;
            co_await asio::async_write(out, asio::buffer(*data),
                                       asio::redirect_error(asio::use_awaitable, rec));
            if (rec)
                rethrow_io(rec, "writing to the terminal");
        }
    };
    auto to_vm = [&]() -> asio::awaitable<attach_end> {
        std::array<char, 4096> buf;
        for (;;) {
            error_code rec;
            auto n = co_await in.async_read_some(asio::buffer(buf),
                                                 asio::redirect_error(asio::use_awaitable, rec));
            // EIO: the terminal hung up (a pty whose master closed).
            if (rec == asio::error::eof || rec == boost::system::errc::io_error)
                co_return attach_end::input_closed;
            if (rec)
                rethrow_io(rec, "reading the terminal");
            std::size_t send = n;
            bool detach = false;
            if (options.escape) {
                auto* hit = static_cast<char*>(std::memchr(buf.data(), *options.escape, n));
                if (hit) {
                    send = static_cast<std::size_t>(hit - buf.data());
                    detach = true;
                }
            }
            if (send > 0) {
                bool open = co_await channel.write(std::string(buf.data(), send));
                if (!open)
                    co_return attach_end::vm_closed;
            }
            if (detach)
                co_return attach_end::detached;
        }
    };

    // The first direction to end (or fail) ends the session.
    auto ended = co_await localvm::detail::race(to_terminal(), to_vm());
    if (ended.index() == 0)
        co_return attach_end::vm_closed;
    co_return std::get<1>(ended);
}

} // namespace localvm::console
