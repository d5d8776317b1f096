// Fetching an image into the cache: download (HTTP, HTTPS) or copy (file),
// verify its digest while the bytes stream, decompress, keep it.
#pragma once

#include <localvm/image/digest.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>

namespace localvm::image {

/// How a fetch is going, as its progress sink sees it.
struct fetch_progress {
    /// Bytes of the file as published received so far (a resumed download
    /// counts what it already had).
    std::uint64_t bytes = 0;
    /// The file's whole length, when the server said (or the local file's size).
    std::optional<std::uint64_t> total;
    /// Bytes per second received by this fetch so far (resumed bytes excluded).
    double bytes_per_second = 0;
    /// True while waiting for another process fetching the same URL.
    bool waiting = false;
    /// True on the last report: the image is verified and in the cache.
    bool done = false;
};

/// Receives progress reports: when a transfer starts, on its first bytes,
/// then at most every 100 ms while bytes flow; once when a wait for another
/// process begins; once more when done. Must not
/// throw (an exception aborts the fetch like an I/O error).
using progress_sink = std::function<void(const fetch_progress&)>;

/// Knobs of `fetch`.
struct fetch_options {
    /// The cache directory; empty: `default_cache_dir()`. It is made a private
    /// directory (mode 0700, owned by the caller, no symbolic links), as are
    /// its entries.
    std::filesystem::path cache_dir;
    /// A PEM file of extra CA certificates to trust for https, besides the
    /// system's store (OpenSSL's default paths). Empty: the system's only.
    std::filesystem::path ca_file;
    /// Redirects followed per request. Default 10; one more fails.
    unsigned max_redirects = 10;
    /// Connections per fetch: a body cut short after some bytes arrived is
    /// resumed (Range) or restarted on a new connection, up to this many in
    /// all. Default 5.
    unsigned max_attempts = 5;
    /// For a connection (and TLS handshake) to be made. Default 30 s.
    std::chrono::milliseconds connect_timeout{30000};
    /// For each read or write on a connection to make progress. Default 60 s.
    std::chrono::milliseconds idle_timeout{60000};
    /// How long to wait for another process fetching the same URL. Default 1 h.
    std::chrono::milliseconds lock_timeout{3600000};
    /// Refuse to use the network: a URL not already cached is an error.
    /// nullopt (the default): on when the environment variable
    /// LOCALVM_OFFLINE is set to anything but "" or "0".
    std::optional<bool> offline;
    /// Progress reports; empty: none.
    progress_sink progress;
};

/// Returns the path of the cached image at `location` (an http, https or
/// file URL, or a plain path; see `parse_url`), fetching it first when the
/// cache has no verified copy. The returned file is the cache's own: read it
/// or use it as a backing file, do not modify it.
///
/// - `expected`: the digest of the file as published (for a `.xz` or `.gz`
///   URL, of the compressed bytes: what SHA*SUMS files list). Checked while
///   the bytes stream; a mismatch deletes what was fetched and throws
///   `errc::digest_mismatch` naming both digests. A cached copy verified
///   with the same algorithm and another value is fetched again (the URL
///   now serves something else), as is one recorded without this
///   algorithm; the old copy stays in place until the new one is verified. nullopt: no check, and
///   the SHA-256 of what was fetched is recorded; a cached copy is used whatever its digest.
/// - The cache entry is locked for the whole fetch: a second process (or
///   coroutine) fetching the same URL waits, then uses the first one's copy.
/// - Downloads go to `data.partial`; a body cut short is resumed with a
///   Range request where the server honours it and restarted otherwise, up
///   to `max_attempts` connections; a partial file left by an earlier,
///   interrupted fetch is resumed the same way. Decompression (`.xz`, `.gz`)
///   happens as the bytes arrive; the result is renamed into place only once
///   verified.
/// - `file://` URLs and plain paths are copied (and decompressed, verified)
///   into the cache like downloads, so that the returned file stays as it was
///   when fetched.
///
/// Throws `localvm::error`: `errc::invalid_argument` for a bad location or
/// CA file, `errc::not_found` for an offline miss, a missing local file or
/// HTTP 404/410, `errc::protocol_error` for another HTTP failure, too many
/// redirects or corrupt compressed data, `errc::timeout` (connect, idle,
/// lock), `errc::digest_mismatch`, `errc::io_error`, and network or TLS
/// errors with their own codes (the diagnostic names the URL).
///
/// Runs on the caller's executor and starts no thread (a host name is
/// looked up with a blocking getaddrinfo). Cancellation: completes with
/// operation_aborted, the lock released; only `data.partial` stays, for the
/// next fetch to resume.
boost::asio::awaitable<std::filesystem::path>
fetch(std::string_view location, std::optional<digest> expected, fetch_options options = {});

} // namespace localvm::image
