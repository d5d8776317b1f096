// The image cache on disk: one directory per URL, keyed by a digest of the
// URL (like Lima's by-url-sha256), the verified digests beside the data.
//
//   CACHE/by-url-sha256/KEY/url           the canonical URL (url::text)
//   CACHE/by-url-sha256/KEY/digest        "sha512:HEX" lines the data was verified with
//   CACHE/by-url-sha256/KEY/data          the image, decompressed; only once verified
//   CACHE/by-url-sha256/KEY/data.partial  a download in progress, bytes as sent (resumable)
//   CACHE/by-url-sha256/KEY/data.unpack   decompressed output being written (never left behind)
//   CACHE/by-url-sha256/KEY/lock          flock()ed by the process fetching KEY
//
// A digest is of the bytes as published: for a `.xz` or `.gz` URL that is
// the compressed file (what distributions list in their SHA*SUMS), although
// `data` holds it decompressed. An entry is cached when `data` and `digest`
// both exist; a new copy replaces `data` only once verified, with `digest`
// removed before and written after, so that no digest describes other data.
#pragma once

#include <localvm/image/digest.hpp>
#include <localvm/image/url.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::image {

/// The files of one cache entry (paths only; nothing is touched).
struct entry_paths {
    std::filesystem::path dir;     ///< CACHE/by-url-sha256/KEY
    std::filesystem::path url;     ///< dir/url
    std::filesystem::path digest;  ///< dir/digest
    std::filesystem::path data;    ///< dir/data
    std::filesystem::path partial; ///< dir/data.partial
    std::filesystem::path unpack;  ///< dir/data.unpack
    std::filesystem::path lock;    ///< dir/lock
};

/// The cache key of `u`: the lower-case hex SHA-256 of `u.text`. Pure.
std::string cache_key(const url& u);

/// Whether `s` looks like a cache key (64 lower-case hex digits). Pure.
bool is_cache_key(std::string_view s) noexcept;

/// The paths of entry `key` in the cache directory `cache_dir`. Pure.
entry_paths paths_of(const std::filesystem::path& cache_dir, std::string_view key);

/// The default cache directory: $XDG_CACHE_HOME/localvm/images, else
/// $HOME/.cache/localvm/images, else /tmp/localvm-cache-UID/images.
std::filesystem::path default_cache_dir();

/// The contents of a `digest` file: one `ALGO:HEX` line per digest. Pure.
std::string format_digests(const std::vector<digest>& digests);

/// Parses a `digest` file's contents; lines that are not a digest are
/// skipped. Pure.
std::vector<digest> parse_digests(std::string_view text);

/// Whether a cached copy verified with `recorded` serves a request for
/// `expected`: always when nothing is expected; else when `recorded` holds a
/// digest of the same algorithm with the same value. Pure.
bool serves(const std::vector<digest>& recorded, const std::optional<digest>& expected);

/// One cached image, as `list` and `find` report it.
struct cached_image {
    std::string key;             ///< The entry's key.
    std::string url;             ///< Its canonical URL ("" when the url file is missing).
    std::filesystem::path data;  ///< The image file.
    std::uint64_t size = 0;      ///< Bytes in `data`.
    std::vector<digest> digests; ///< What it was verified with.
};

/// The complete entry `key` in `cache_dir`, or nullopt when it is missing or
/// incomplete (no data or no digest file). Throws nothing.
std::optional<cached_image> find_cached(const std::filesystem::path& cache_dir,
                                        std::string_view key);

/// Every complete entry in `cache_dir`, ordered by URL. An absent cache is
/// empty. Throws nothing.
std::vector<cached_image> list_cached(const std::filesystem::path& cache_dir);

/// Removes entry `key` (complete or partial) from `cache_dir`; returns
/// whether there was one. Takes the entry's lock without waiting: an entry
/// being fetched right now is `errc::busy`.
/// Throws `errc::io_error` when a file cannot be removed.
bool remove_cached(const std::filesystem::path& cache_dir, std::string_view key);

} // namespace localvm::image
