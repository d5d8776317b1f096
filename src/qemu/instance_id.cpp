#include "instance_id.hpp"

#include <cstddef>

namespace localvm::qemu::detail {
namespace {

constexpr std::uint64_t mul = 0xc6a4a7935bd1e995ULL;

std::uint64_t shift_mix(std::uint64_t v) {
    return v ^ (v >> 47);
}

// The first n bytes at p (n <= 8) as a little-endian number, whatever the
// host's byte order.
std::uint64_t load_le(const char* p, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = n; i-- > 0;)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

} // namespace

std::uint64_t murmur_hash_64a(std::string_view bytes, std::uint64_t seed) noexcept {
    const char* p = bytes.data();
    const std::size_t len = bytes.size();
    const char* const end = p + (len & ~std::size_t{7});
    std::uint64_t h = seed ^ (len * mul);
    for (; p != end; p += 8) {
        h ^= shift_mix(load_le(p, 8) * mul) * mul;
        h *= mul;
    }
    if ((len & 7) != 0) {
        h ^= load_le(end, len & 7);
        h *= mul;
    }
    return shift_mix(shift_mix(h) * mul);
}

std::string instance_id(std::string_view name, std::string_view user_data,
                        std::string_view ssh_key) {
    std::string hashed;
    hashed.reserve(user_data.size() + 1 + ssh_key.size());
    hashed.append(user_data).append("\n").append(ssh_key);
    auto h = murmur_hash_64a(hashed, 0xc70f6907);
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    do {
        hex.insert(hex.begin(), digits[h & 0xf]);
        h >>= 4;
    } while (h != 0);
    return "iid-" + std::string(name) + "-" + hex;
}

} // namespace localvm::qemu::detail
