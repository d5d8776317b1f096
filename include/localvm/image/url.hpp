// Where an image comes from: http, https and file URLs and plain paths,
// parsed without I/O, and the Location of a redirect resolved against them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::image {

/// How an image is reached.
enum class scheme {
    http,  ///< Plain HTTP/1.1.
    https, ///< HTTP/1.1 over TLS, the peer verified against the trusted CAs.
    file,  ///< A local file (`file:///abs/path` or a plain path).
};

/// How an image is compressed, as its URL's path says (`.xz`, `.gz`). The
/// cache keeps it decompressed.
enum class compression {
    none,
    gzip, ///< The path ends in `.gz`.
    xz,   ///< The path ends in `.xz`.
};

/// A parsed image location.
struct url {
    image::scheme scheme = image::scheme::file;
    /// http(s): the host, lower-cased; an IPv6 literal without its brackets.
    std::string host;
    /// http(s): the port, explicit or the scheme's default (80, 443).
    std::uint16_t port = 0;
    /// http(s): path and query as sent on the request line, e.g. "/a/b.qcow2?x=1"
    /// (never empty: "/" at least). The fragment is dropped.
    std::string target;
    /// file: the absolute, lexically normal local path (percent-decoded).
    std::filesystem::path path;
    /// The canonical text: scheme and host lower-cased, a default port
    /// dropped, no fragment; `file://` plus the absolute path for files. The
    /// cache key is a digest of it, so that equal locations share an entry.
    std::string text;
    /// From the last suffix of the path (`.xz`, `.gz`), else none.
    image::compression compression = image::compression::none;
};

/// Parses `text`: an `http://`, `https://` or `file://` URL, or else a plain
/// path (relative ones are made absolute against `cwd`, which must be
/// absolute). Pure. On failure returns nullopt and sets `problem` to one line
/// naming what is wrong (unknown scheme, user info, a bad port, an empty
/// host, control characters or spaces, a `file://` URL with a host, ...).
std::optional<url> parse_url(std::string_view text, const std::filesystem::path& cwd,
                             std::string& problem);

/// Resolves a redirect's `Location` value against the URL `base` that
/// answered with it (RFC 9110 / RFC 3986: absolute URL, `//host/...`,
/// `/path`, or a path relative to the base's directory). The result keeps
/// `base`'s compression (the original URL says what the bytes are). Pure.
/// Refuses (nullopt, `problem` set) a Location that is empty or malformed, a
/// non-HTTP scheme (a server may not send us to `file://`) and a downgrade
/// from https to http.
std::optional<url> resolve_location(const url& base, std::string_view location,
                                    std::string& problem);

/// "host:port" for messages and the Host header ("[::1]:8080" for IPv6);
/// the port is omitted when it is the scheme's default.
std::string authority(const url& u);

} // namespace localvm::image
