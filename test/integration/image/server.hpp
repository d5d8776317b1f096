// A small HTTP/1.1 file server on 127.0.0.1 for the image tests and bench
// (Boost.Beast): it serves byte strings, and on request cuts a connection
// mid-body, ignores Range, redirects, frames a body in chunks or by closing
// the connection, or holds a body half-sent until told
// to go on; it counts requests and records their Range headers.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace localvm::test {

/// How one path is served.
struct route {
    route() = default;
    /// Serves `b`, cut after `cut` body bytes the first time when given.
    explicit route(std::string b, std::optional<std::size_t> cut = std::nullopt)
        : body(std::move(b))
        , cut_at(cut) {}
    std::string body;                   ///< The file.
    std::optional<std::size_t> cut_at;  ///< Close the connection after this many body bytes...
    unsigned cuts = 1;                  ///< ...for this many requests (then serve whole).
    bool ignore_range = false;          ///< Answer every request 200 with the whole body.
    std::string redirect_to;            ///< Non-empty: answer 302 with this Location.
    std::optional<std::size_t> hold_at; ///< Stop after this many body bytes until `release()`.
    /// How a 200 body is delimited: by Content-Length, in chunks
    /// (Transfer-Encoding: chunked, 64 KiB each), or by closing the connection.
    enum class framing { length, chunked, close } frame = framing::length;
};

/// What one request asked.
struct request_record {
    std::string target;
    std::string range; ///< The Range header, "" when none.
};

class http_server {
public:
    /// Listens on 127.0.0.1 (a free port) on `executor`; with `cert`/`key`
    /// (PEM files) it speaks TLS only.
    explicit http_server(boost::asio::any_io_executor executor, std::filesystem::path cert = {},
                         std::filesystem::path key = {});
    ~http_server();

    /// Serves `r` at `target` ("/a.img").
    void add(std::string target, route r);
    /// "http://127.0.0.1:PORT" (or https).
    std::string base() const;
    std::uint16_t port() const;
    /// Requests so far, all paths, oldest first.
    const std::vector<request_record>& requests() const;
    /// Requests for `target` so far.
    std::size_t count(const std::string& target) const;
    /// Lets held bodies go on (now and from now on).
    void release();
    /// Returns once at least `n` requests have arrived (all paths).
    boost::asio::awaitable<void> wait_requests(std::size_t n);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace localvm::test
