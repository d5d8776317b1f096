#include "base64.hpp"

#include <array>
#include <cstdint>

namespace localvm::qga::detail {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_values() {
    std::array<std::int8_t, 256> v{};
    for (auto& x : v)
        x = -1;
    for (int i = 0; i < 64; ++i)
        v[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
    return v;
}

constexpr auto values = make_values();

} // namespace

void base64_encode(std::string_view bytes, std::string& out) {
    out.reserve(out.size() + (bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto at = [&](std::size_t k) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k]));
    };
    for (; i + 3 <= bytes.size(); i += 3) {
        std::uint32_t n = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
        out += alphabet[n >> 18 & 63];
        out += alphabet[n >> 12 & 63];
        out += alphabet[n >> 6 & 63];
        out += alphabet[n & 63];
    }
    if (bytes.size() - i == 1) {
        std::uint32_t n = at(i) << 16;
        out += alphabet[n >> 18 & 63];
        out += alphabet[n >> 12 & 63];
        out += "==";
    } else if (bytes.size() - i == 2) {
        std::uint32_t n = at(i) << 16 | at(i + 1) << 8;
        out += alphabet[n >> 18 & 63];
        out += alphabet[n >> 12 & 63];
        out += alphabet[n >> 6 & 63];
        out += '=';
    }
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0)
        return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        bool last = i + 4 == text.size();
        int pad = 0;
        std::uint32_t n = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            auto c = static_cast<unsigned char>(text[i + k]);
            if (c == '=' && last && k >= 2) {
                ++pad;
                n <<= 6;
                continue;
            }
            if (pad > 0 || values[c] < 0)
                return std::nullopt; // data after padding, or not in the alphabet
            n = n << 6 | static_cast<std::uint32_t>(values[c]);
        }
        out += static_cast<char>(n >> 16 & 0xff);
        if (pad < 2)
            out += static_cast<char>(n >> 8 & 0xff);
        if (pad < 1)
            out += static_cast<char>(n & 0xff);
        // Non-canonical encodings (bits set beyond the data) are rejected
        // so that each byte string has one encoding.
        if ((pad == 2 && (n & 0xffff)) || (pad == 1 && (n & 0xff)))
            return std::nullopt;
    }
    return out;
}

} // namespace localvm::qga::detail
