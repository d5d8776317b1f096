// Image digests: `sha256:HEX` / `sha512:HEX` specs, and a streaming hasher
// (OpenSSL EVP) to check bytes as they arrive.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::image {

/// The digest algorithms an image may be verified with.
enum class digest_algorithm {
    sha256, ///< SHA-256: 64 hex digits.
    sha512, ///< SHA-512: 128 hex digits (what Debian publishes in SHA512SUMS).
};

/// "sha256" or "sha512".
std::string_view name(digest_algorithm a) noexcept;

/// A digest: an algorithm and its value in lower-case hex.
struct digest {
    digest_algorithm algorithm = digest_algorithm::sha256;
    std::string hex; ///< Lower-case, 64 or 128 digits.

    /// "sha256:HEX", the form `parse_digest` reads and the cache stores.
    std::string text() const;
    friend bool operator==(const digest&, const digest&) = default;
};

/// Parses "sha256:HEX" or "sha512:HEX" (algorithm name case-insensitive,
/// hex in either case; stored lower-case). Pure. On failure returns nullopt
/// and sets `problem` naming what is wrong (unknown algorithm, wrong number
/// of digits, a non-hex character).
std::optional<digest> parse_digest(std::string_view spec, std::string& problem);

/// As above for a bare hex value of a known algorithm (`--sha512 HEX`).
std::optional<digest> parse_digest(digest_algorithm a, std::string_view hex, std::string& problem);

/// Hashes a stream of bytes. Not copyable; movable.
class hasher {
public:
    /// Starts a hash. Throws `localvm::error` with `errc::unsupported` when
    /// OpenSSL cannot provide the algorithm.
    explicit hasher(digest_algorithm a);
    hasher(hasher&&) noexcept;
    hasher& operator=(hasher&&) noexcept;
    ~hasher();

    /// Adds `bytes`.
    void update(std::string_view bytes);
    /// The digest of everything added; the hasher starts over afterwards.
    digest finish();
    /// Forgets everything added so far.
    void reset();
    digest_algorithm algorithm() const noexcept { return algorithm_; }

private:
    struct impl;
    std::unique_ptr<impl> impl_;
    digest_algorithm algorithm_;
};

} // namespace localvm::image
