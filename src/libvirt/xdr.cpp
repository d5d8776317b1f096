#include <localvm/libvirt/xdr.hpp>

namespace localvm::libvirt::xdr {

namespace {

std::size_t padding(std::size_t n) {
    return (4 - n % 4) % 4;
}

} // namespace

void writer::u32(std::uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
    out_->append(b, 4);
}

void writer::i32(std::int32_t v) {
    u32(static_cast<std::uint32_t>(v));
}

void writer::u64(std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v >> 32));
    u32(static_cast<std::uint32_t>(v));
}

void writer::i64(std::int64_t v) {
    u64(static_cast<std::uint64_t>(v));
}
void writer::boolean(bool v) {
    u32(v ? 1 : 0);
}

void writer::fixed_opaque(std::string_view bytes) {
    out_->append(bytes);
    out_->append(padding(bytes.size()), '\0');
}

void writer::string(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    fixed_opaque(s);
}

void writer::optional_string(const std::optional<std::string>& s) {
    boolean(s.has_value());
    if (s)
        string(*s);
}

void reader::fail(std::string problem) {
    if (failed_)
        return;
    failed_ = true;
    problem_ = std::move(problem);
}

std::string_view reader::take(std::size_t n, const char* what) {
    if (failed_)
        return {};
    if (remaining() < n) {
        fail(std::string(what) + ": needs " + std::to_string(n) + " bytes, " +
             std::to_string(remaining()) + " left at offset " + std::to_string(pos_));
        return {};
    }
    auto v = in_.substr(pos_, n);
    pos_ += n;
    return v;
}

std::string_view reader::take_padded(std::size_t n, const char* what) {
    const std::size_t at = pos_;
    auto v = take(n + padding(n), what);
    if (failed_)
        return {};
    for (std::size_t i = n; i < v.size(); ++i)
        if (v[i] != '\0') {
            fail(std::string(what) + ": non-zero padding at offset " + std::to_string(at + i));
            return {};
        }
    return v.substr(0, n);
}

std::uint32_t reader::u32() {
    auto b = take(4, "unsigned int");
    if (failed_)
        return 0;
    auto u = [&](std::size_t i) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(b[i]));
    };
    return u(0) << 24 | u(1) << 16 | u(2) << 8 | u(3);
}

std::int32_t reader::i32() {
    return static_cast<std::int32_t>(u32());
}

std::uint64_t reader::u64() {
    std::uint64_t hi = u32();
    std::uint64_t lo = u32();
    return failed_ ? 0 : hi << 32 | lo;
}

std::int64_t reader::i64() {
    return static_cast<std::int64_t>(u64());
}

bool reader::boolean() {
    const std::size_t at = pos_;
    auto v = u32();
    if (v > 1)
        fail("boolean " + std::to_string(v) + " at offset " + std::to_string(at));
    return !failed_ && v == 1;
}

std::uint32_t reader::u32_at_most(std::uint32_t max, const char* what) {
    const std::size_t at = pos_;
    auto v = u32();
    if (v > max)
        fail(std::string(what) + " " + std::to_string(v) + " exceeds " + std::to_string(max) +
             " at offset " + std::to_string(at));
    return failed_ ? 0 : v;
}

std::string reader::string(std::uint32_t max) {
    const std::size_t at = pos_;
    auto n = u32();
    if (failed_)
        return {};
    if (n > max) {
        fail("string length " + std::to_string(n) + " exceeds " + std::to_string(max) +
             " at offset " + std::to_string(at));
        return {};
    }
    return std::string(take_padded(n, "string"));
}

std::optional<std::string> reader::optional_string(std::uint32_t max) {
    if (!boolean())
        return std::nullopt;
    auto s = string(max);
    if (failed_)
        return std::nullopt;
    return s;
}

void reader::expect_end() {
    if (!failed_ && remaining() != 0)
        fail(std::to_string(remaining()) + " trailing bytes at offset " + std::to_string(pos_));
}

} // namespace localvm::libvirt::xdr
