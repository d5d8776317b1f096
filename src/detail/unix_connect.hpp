// Internal: connecting to a unix socket, for every client in src/ that
// talks to a local server (QMP, the guest agent, libvirtd).
#pragma once

#include <localvm/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include "detail/await.hpp"
#include "detail/backoff.hpp"

namespace localvm::detail {

/// Connects `socket` to the unix socket at `path`. A listening socket whose
/// queue is full (a QEMU chardev or qemu-ga serves one client and queues
/// one more) refuses a non-blocking connect with EAGAIN, which asio reports
/// as success on a socket that is not connected: so connected means a peer
/// is there; otherwise it tries again after a pause that doubles from 1 ms
/// to 100 ms (the kernel tells nobody when room comes), for as long as the
/// caller lets it: put a deadline around it.
/// Throws `errc::invalid_argument` ("<what> path P: why") for a path that
/// is no unix socket address, `errc::not_found` ("connecting to <what> P:
/// why") when nothing is there, and `closed` with the same text for any
/// other failure. Cancellation: `operation_aborted`.
inline boost::asio::awaitable<void> connect_unix(boost::asio::local::stream_protocol::socket& socket,
                                                 const std::string& path, std::string_view what,
                                                 errc closed) {
    namespace asio = boost::asio;
    asio::local::stream_protocol::endpoint ep;
    try {
        ep = asio::local::stream_protocol::endpoint(path);
    } catch (const boost::system::system_error& e) {
        throw localvm::error(errc::invalid_argument,
                             std::string(what) + " path " + path + ": " + e.code().message());
    }
    backoff pause(std::chrono::milliseconds(1), std::chrono::milliseconds(100));
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        boost::system::error_code ec;
        co_await socket.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::operation_aborted)
            co_await throw_if_cancelled();
        if (ec == boost::system::errc::no_such_file_or_directory)
            throw localvm::error(errc::not_found,
                                 "connecting to " + std::string(what) + " " + path + ": " +
                                     ec.message());
        if (ec)
            throw localvm::error(closed, "connecting to " + std::string(what) + " " + path + ": " +
                                             ec.message());
        socket.remote_endpoint(ec);
        if (!ec)
            co_return;
        socket.close(ec);
        timer.expires_after(pause.next());
        co_await timer.async_wait(asio::use_awaitable);
    }
}

} // namespace localvm::detail
