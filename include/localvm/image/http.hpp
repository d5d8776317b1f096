// What to do with an HTTP response to an image request: the decisions of a
// download (follow a redirect, resume, start over, fail) as pure functions
// over the status line and headers, without sockets.
#pragma once

#include <localvm/error.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::image {

/// A parsed `Content-Range` value (RFC 9110 14.4): `bytes FIRST-LAST/LENGTH`,
/// `bytes FIRST-LAST/*` or `bytes */LENGTH` (unsatisfied range).
struct content_range {
    std::optional<std::uint64_t> first;           ///< Absent for `bytes */LENGTH`.
    std::optional<std::uint64_t> last;            ///< Inclusive; absent for `bytes */LENGTH`.
    std::optional<std::uint64_t> complete_length; ///< Absent for `/*`.
};

/// Parses a Content-Range value; nullopt when malformed (FIRST > LAST,
/// LAST >= LENGTH, not the `bytes` unit, junk).
std::optional<content_range> parse_content_range(std::string_view value);

/// The `Range` header value asking for the bytes from `offset` on
/// ("bytes=OFFSET-"); nullopt when `offset` is 0 (ask for everything).
std::optional<std::string> range_header(std::uint64_t offset);

/// What a response said, as far as the decision needs it.
struct response_facts {
    unsigned status = 0;                         ///< e.g. 200, 206, 302.
    std::string reason;                          ///< e.g. "Not Found".
    std::optional<std::string> location;         ///< Location header.
    std::optional<std::string> content_range;    ///< Content-Range header.
    std::optional<std::uint64_t> content_length; ///< Content-Length (absent when chunked).
};

/// The next step of a download after a response's header.
enum class response_action {
    write_body, ///< Read the body into the file at `decision::offset` (0 truncates).
    redirect,   ///< Request `decision::location` instead (not yet resolved).
    restart,    ///< Drop the partial data and ask again without a Range.
    complete,   ///< The partial data is already the whole file (416 with our length).
    fail,       ///< Give up: `decision::code` and `decision::problem`.
};

/// A decision and what it needs.
struct decision {
    response_action action = response_action::fail;
    std::uint64_t offset = 0;           ///< write_body: where the body's first byte goes.
    std::optional<std::uint64_t> total; ///< write_body: the whole file's length, when known.
    std::string location;               ///< redirect: the Location value.
    errc code = errc::protocol_error;   ///< fail: not_found (404, 410) or protocol_error.
    std::string problem;                ///< fail: one line, e.g. "HTTP 500 Internal Server Error".
};

/// Decides what a response to a request for the bytes from `offset` on
/// means. Pure. `redirects` is how many redirects were followed for this
/// request so far; one more than `max_redirects` fails ("too many
/// redirects"). The ladder:
/// - 301, 302, 303, 307, 308: redirect (a missing Location fails);
/// - 200: the whole file from byte 0 (a server ignoring our Range starts
///   over: write_body at 0, which truncates);
/// - 206 to a Range request: write_body at `offset` when Content-Range starts
///   exactly there (and agrees with Content-Length); a 206 that does not
///   match, or one we did not ask for, restarts;
/// - 416 to a Range request: complete when Content-Range says the length is
///   exactly `offset`, else restart;
/// - 404 and 410: fail with not_found; anything else fails with protocol_error.
decision decide(const response_facts& r, std::uint64_t offset, unsigned redirects,
                unsigned max_redirects);

} // namespace localvm::image
