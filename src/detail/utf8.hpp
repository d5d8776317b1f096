// Internal: the one strict UTF-8 decoder of localvm, for every layer that
// must tell valid text from bytes it cannot represent faithfully (the
// NoCloud YAML renderer, the ISO writer, the console line cleaner).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace localvm::detail {

/// Decodes the code point starting at `s[pos]` (`pos < s.size()`) and
/// advances `pos` past it. Returns nullopt for malformed UTF-8: a bad lead
/// or continuation byte, a truncated sequence, an overlong form, a
/// surrogate (U+D800..U+DFFF) or a value above U+10FFFF (`pos` is then left
/// unchanged). Pure; never throws.
inline std::optional<char32_t> next_code_point(std::string_view s, std::size_t& pos) noexcept {
    auto byte = [&](std::size_t i) {
        return static_cast<std::uint8_t>(s[i]);
    };
    const std::uint8_t b0 = byte(pos);
    if (b0 < 0x80) {
        ++pos;
        return b0;
    }
    std::size_t len = 0;
    char32_t cp = 0;
    char32_t min = 0;
    if ((b0 & 0xE0) == 0xC0) {
        len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
        return std::nullopt;
    }
    if (s.size() - pos < len)
        return std::nullopt;
    for (std::size_t i = 1; i < len; ++i) {
        const std::uint8_t b = byte(pos + i);
        if ((b & 0xC0) != 0x80)
            return std::nullopt;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return std::nullopt;
    pos += len;
    return cp;
}

/// The length in bytes (1 to 4) of the valid UTF-8 sequence at `s[pos]`
/// (`pos < s.size()`), or 0 when it is malformed (as `next_code_point`).
inline std::size_t sequence_length(std::string_view s, std::size_t pos) noexcept {
    std::size_t end = pos;
    return next_code_point(s, end) ? end - pos : 0;
}

} // namespace localvm::detail
