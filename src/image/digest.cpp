#include <localvm/error.hpp>
#include <localvm/image/digest.hpp>

#include <openssl/evp.h>

namespace localvm::image {
namespace {

const EVP_MD* evp_of(digest_algorithm a) {
    return a == digest_algorithm::sha256 ? EVP_sha256() : EVP_sha512();
}

std::size_t hex_digits(digest_algorithm a) {
    return a == digest_algorithm::sha256 ? 64 : 128;
}

} // namespace

std::string_view name(digest_algorithm a) noexcept {
    return a == digest_algorithm::sha256 ? "sha256" : "sha512";
}

std::string digest::text() const {
    return std::string(name(algorithm)) + ":" + hex;
}

std::optional<digest> parse_digest(digest_algorithm a, std::string_view hex, std::string& problem) {
    if (hex.size() != hex_digits(a)) {
        problem = std::string(name(a)) + " digest must have " + std::to_string(hex_digits(a)) +
                  " hex digits, got " + std::to_string(hex.size());
        return std::nullopt;
    }
    digest d{a, {}};
    for (char c : hex) {
        if (c >= 'A' && c <= 'F')
            c = static_cast<char>(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            problem = std::string(name(a)) + " digest has a non-hex character '" +
                      std::string(1, c) + "'";
            return std::nullopt;
        }
        d.hex += c;
    }
    return d;
}

std::optional<digest> parse_digest(std::string_view spec, std::string& problem) {
    auto colon = spec.find(':');
    if (colon == std::string_view::npos) {
        problem =
            "digest \"" + std::string(spec) + "\" is not ALGORITHM:HEX (sha256:... or sha512:...)";
        return std::nullopt;
    }
    std::string algo(spec.substr(0, colon));
    for (auto& c : algo)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    if (algo == "sha256")
        return parse_digest(digest_algorithm::sha256, spec.substr(colon + 1), problem);
    if (algo == "sha512")
        return parse_digest(digest_algorithm::sha512, spec.substr(colon + 1), problem);
    problem = "unknown digest algorithm \"" + algo + "\" (expected sha256 or sha512)";
    return std::nullopt;
}

struct hasher::impl {
    EVP_MD_CTX* ctx = nullptr;
    ~impl() { EVP_MD_CTX_free(ctx); }
};

hasher::hasher(digest_algorithm a)
    : impl_(std::make_unique<impl>())
    , algorithm_(a) {
    impl_->ctx = EVP_MD_CTX_new();
    if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, evp_of(a), nullptr) != 1)
        throw_error(errc::unsupported, "OpenSSL cannot compute " + std::string(name(a)));
}

hasher::hasher(hasher&&) noexcept = default;
hasher& hasher::operator=(hasher&&) noexcept = default;
hasher::~hasher() = default;

void hasher::update(std::string_view bytes) {
    EVP_DigestUpdate(impl_->ctx, bytes.data(), bytes.size());
}

void hasher::reset() {
    EVP_DigestInit_ex(impl_->ctx, evp_of(algorithm_), nullptr);
}

digest hasher::finish() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(impl_->ctx, md, &len);
    static const char digits[] = "0123456789abcdef";
    digest d{algorithm_, {}};
    for (unsigned i = 0; i < len; ++i) {
        d.hex += digits[md[i] >> 4];
        d.hex += digits[md[i] & 15];
    }
    reset();
    return d;
}

} // namespace localvm::image
