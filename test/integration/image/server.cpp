#include "server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <charconv>
#include <cstdio>
#include <exception>
#include <iostream>

namespace localvm::test {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct http_server::impl : std::enable_shared_from_this<impl> {
    asio::any_io_executor ex;
    tcp::acceptor acceptor;
    std::optional<asio::ssl::context> tls;
    std::map<std::string, route> routes;
    std::map<std::string, unsigned> served; // requests per target
    std::vector<request_record> log;
    bool released = false;
    asio::steady_timer release_event; // cancelled by release(): wakes held bodies
    asio::steady_timer request_event; // cancelled on each request

    explicit impl(asio::any_io_executor e)
        : ex(e)
        , acceptor(e, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
        , release_event(e, asio::steady_timer::time_point::max())
        , request_event(e, asio::steady_timer::time_point::max()) {}

    template <class Stream>
    static asio::awaitable<void> write_chunked(Stream& s, std::string_view body,
                                               boost::system::error_code& ec) {
        constexpr std::size_t piece = 64 * 1024;
        for (std::size_t at = 0;; at += piece) {
            auto part = body.substr(std::min(at, body.size()), piece); // empty: the last chunk
            char size[32];
            auto n = std::snprintf(size, sizeof size, "%zx\r\n", part.size());
            std::array<asio::const_buffer, 3> bufs{asio::buffer(size, static_cast<std::size_t>(n)),
                                                   asio::buffer(part), asio::buffer("\r\n", 2)};
            co_await asio::async_write(s, bufs, asio::redirect_error(asio::use_awaitable, ec));
            if (ec || part.empty())
                co_return;
        }
    }

    template <class Stream> asio::awaitable<void> serve(Stream& s) {
        boost::beast::flat_buffer buf;
        http::request<http::empty_body> req;
        boost::system::error_code ec;
        co_await http::async_read(s, buf, req, asio::redirect_error(asio::use_awaitable, ec));
        if (ec)
            co_return;
        std::string target(req.target());
        std::string range(req[http::field::range]);
        log.push_back({target, range});
        request_event.cancel();
        unsigned nth = ++served[target];
        auto it = routes.find(target);
        std::string head;
        std::string_view body;
        std::size_t send = 0;
        std::optional<std::size_t> hold;
        bool chunked = false;
        if (it == routes.end()) {
            head = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n";
        } else if (!it->second.redirect_to.empty()) {
            head = "HTTP/1.1 302 Found\r\nLocation: " + it->second.redirect_to +
                   "\r\nContent-Length: 0\r\n";
        } else {
            const route& r = it->second;
            std::size_t from = 0;
            if (!r.ignore_range && range.starts_with("bytes=") && range.ends_with("-")) {
                auto digits = std::string_view(range).substr(6, range.size() - 7);
                std::from_chars(digits.data(), digits.data() + digits.size(), from);
            }
            if (from > 0 && from >= r.body.size()) {
                head = "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" +
                       std::to_string(r.body.size()) + "\r\nContent-Length: 0\r\n";
            } else if (from > 0) {
                head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " +
                       std::to_string(from) + "-" + std::to_string(r.body.size() - 1) + "/" +
                       std::to_string(r.body.size()) +
                       "\r\nContent-Length: " + std::to_string(r.body.size() - from) + "\r\n";
            } else if (r.frame == route::framing::chunked) {
                head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n";
                chunked = true;
            } else if (r.frame == route::framing::close) {
                head = "HTTP/1.1 200 OK\r\n";
            } else {
                head =
                    "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
            }
            body = std::string_view(r.body).substr(std::min(from, r.body.size()));
            send = body.size();
            if (r.cut_at && nth <= r.cuts)
                send = std::min(send, *r.cut_at);
            hold = r.hold_at;
        }
        head += "Connection: close\r\n\r\n";
        co_await asio::async_write(s, asio::buffer(head),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec)
            co_return;
        if (chunked) {
            co_await write_chunked(s, body, ec);
            co_return;
        }
        std::size_t sent = 0;
        if (hold && *hold < send && !released) {
            co_await asio::async_write(s, asio::buffer(body.substr(0, *hold)),
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec)
                co_return;
            sent = *hold;
            if (!released)
                co_await release_event.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        co_await asio::async_write(s, asio::buffer(body.substr(sent, send - sent)),
                                   asio::redirect_error(asio::use_awaitable, ec));
        // Then close (the socket's destructor): a cut is a short body.
    }

    asio::awaitable<void> connection(std::shared_ptr<impl> self, tcp::socket sock) {
        (void)self; // keeps the server's state alive as long as this connection
        if (!tls) {
            co_await serve(sock);
            boost::system::error_code ec;
            sock.shutdown(tcp::socket::shutdown_both, ec);
            co_return;
        }
        asio::ssl::stream<tcp::socket> s(std::move(sock), *tls);
        boost::system::error_code ec;
        co_await s.async_handshake(asio::ssl::stream_base::server,
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (!ec)
            co_await serve(s);
    }

    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        for (;;) {
            boost::system::error_code ec;
            tcp::socket sock(ex);
            co_await acceptor.async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
            if (ec)
                co_return; // closed
            asio::co_spawn(ex, connection(self, std::move(sock)), [](std::exception_ptr e) {
                if (e) {
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& x) {
                        std::cerr << "test http server: " << x.what() << "\n";
                    }
                }
            });
        }
    }
};

http_server::http_server(asio::any_io_executor executor, std::filesystem::path cert,
                         std::filesystem::path key)
    : impl_(std::make_shared<impl>(executor)) {
    if (!cert.empty()) {
        impl_->tls.emplace(asio::ssl::context::tls_server);
        impl_->tls->use_certificate_chain_file(cert.string());
        impl_->tls->use_private_key_file(key.string(), asio::ssl::context::pem);
    }
    asio::co_spawn(executor, impl_->accept_loop(), [](std::exception_ptr e) {
        if (e)
            std::rethrow_exception(e);
    });
}

http_server::~http_server() {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
    impl_->release_event.cancel();
}

void http_server::add(std::string target, route r) {
    impl_->routes[std::move(target)] = std::move(r);
}

std::string http_server::base() const {
    return std::string(impl_->tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port());
}

std::uint16_t http_server::port() const {
    return impl_->acceptor.local_endpoint().port();
}

const std::vector<request_record>& http_server::requests() const {
    return impl_->log;
}

std::size_t http_server::count(const std::string& target) const {
    auto it = impl_->served.find(target);
    return it == impl_->served.end() ? 0 : it->second;
}

asio::awaitable<void> http_server::wait_requests(std::size_t n) {
    while (impl_->log.size() < n) {
        boost::system::error_code ec;
        co_await impl_->request_event.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

void http_server::release() {
    impl_->released = true;
    impl_->release_event.cancel();
}

} // namespace localvm::test
