// One HTTP(S) download attempt with Boost.Beast on the caller's executor:
// GET (with a Range to resume), redirects followed, the body streamed to a
// callback. The decisions are image::decide's. Internal to the image layer.
#pragma once

#include <localvm/image/http.hpp>
#include <localvm/image/url.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>

namespace localvm::image::detail {

struct http_settings {
    std::filesystem::path ca_file;
    unsigned max_redirects = 10;
    std::chrono::milliseconds connect_timeout{30000};
    std::chrono::milliseconds idle_timeout{60000};
};

/// Called once a response's body is about to be read: where its first
/// byte goes (0: start over) and the whole length when known.
using body_start_fn = std::function<void(std::uint64_t offset, std::optional<std::uint64_t> total)>;
/// Called with each piece of the body.
using body_data_fn = std::function<void(std::string_view)>;

/// GETs `u` from byte `offset` on, following redirects (and re-asking
/// without a Range when the server's answer to one does not fit). Returns
/// once the body is complete (`on_start` then `on_data` for every piece), or
/// once a 416 says the `offset` bytes already are the whole file (only
/// `on_start(offset, offset)`). Throws `localvm::error`: the decision's code
/// for an HTTP failure, `errc::timeout` for a connect or an idle read that
/// took too long, the network or TLS error's own code (naming the URL)
/// otherwise, including a body cut short. Cancellation: operation_aborted.
boost::asio::awaitable<void> http_get(const url& u, std::uint64_t offset,
                                      const http_settings& settings, body_start_fn on_start,
                                      body_data_fn on_data);

} // namespace localvm::image::detail
