// XDR (RFC 4506) encoding and decoding, the subset libvirt's RPC uses.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::libvirt::xdr {

/// Longest string or variable-length opaque accepted by default: libvirt's
/// `REMOTE_STRING_MAX` / `VIR_NET_MESSAGE_STRING_MAX`, 4 MiB.
inline constexpr std::uint32_t default_string_max = 4u << 20;

/// Appends XDR items to a byte string. Every item is a multiple of 4 bytes,
/// big-endian; variable-length data is padded with zero bytes. Never throws
/// beyond std::bad_alloc.
class writer {
public:
    /// Appends to `out` (which it does not own; it must outlive the writer).
    explicit writer(std::string& out) noexcept
        : out_(&out) {}

    void u32(std::uint32_t v); ///< `unsigned int`: 4 bytes.
    void i32(std::int32_t v);  ///< `int`: 4 bytes, two's complement.
    void u64(std::uint64_t v); ///< `unsigned hyper`: 8 bytes.
    void i64(std::int64_t v);  ///< `hyper`: 8 bytes.
    void boolean(bool v);      ///< `bool`: 0 or 1 in 4 bytes.
    /// `opaque[N]`: the bytes, then zero padding to a multiple of 4.
    void fixed_opaque(std::string_view bytes);
    /// `string<>` and `opaque<>`: a 4-byte length, the bytes, padding.
    void string(std::string_view s);
    /// A libvirt `remote_string` (`remote_nonnull_string *`): a boolean
    /// "present" word, then the string when present.
    void optional_string(const std::optional<std::string>& s);

private:
    std::string* out_;
};

/// Reads XDR items from the front of a byte view. The first failure (too few
/// bytes, a length beyond its limit, a boolean other than 0 or 1, padding
/// that is not zero) sets `failed()` and `problem()`; from then on reads
/// return zero values and change nothing. Never throws beyond std::bad_alloc.
class reader {
public:
    explicit reader(std::string_view bytes) noexcept
        : in_(bytes) {}

    std::uint32_t u32();
    std::int32_t i32();
    std::uint64_t u64();
    std::int64_t i64();
    bool boolean();
    /// `unsigned char` and `unsigned short` travel as 4-byte words; a value
    /// above `max` is a failure.
    std::uint32_t u32_at_most(std::uint32_t max, const char* what);
    /// `opaque[N]` for the N given by the array.
    template <std::size_t N> std::array<std::uint8_t, N> fixed_opaque() {
        std::array<std::uint8_t, N> out{};
        auto b = take_padded(N, "fixed opaque");
        for (std::size_t i = 0; i < b.size() && i < N; ++i)
            out[i] = static_cast<std::uint8_t>(b[i]);
        return out;
    }
    /// `string<max>` / `opaque<max>`.
    std::string string(std::uint32_t max = default_string_max);
    /// `remote_string`: nullopt when the "present" word is 0.
    std::optional<std::string> optional_string(std::uint32_t max = default_string_max);

    /// Records a failure found by the caller (e.g. an enum value out of
    /// range) unless one is recorded already.
    void fail(std::string problem);
    /// Fails unless every byte was read ("N trailing bytes").
    void expect_end();

    bool failed() const noexcept { return failed_; }
    /// What went wrong first, with the byte offset, e.g. "string length
    /// 5000000 exceeds 4194304 at offset 12"; empty while none.
    const std::string& problem() const noexcept { return problem_; }
    std::size_t offset() const noexcept { return pos_; }
    std::size_t remaining() const noexcept { return in_.size() - pos_; }

private:
    std::string_view take(std::size_t n, const char* what);
    std::string_view take_padded(std::size_t n, const char* what);

    std::string_view in_;
    std::size_t pos_ = 0;
    bool failed_ = false;
    std::string problem_;
};

} // namespace localvm::libvirt::xdr
