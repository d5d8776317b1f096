// Fuzz target for the libvirt sans-io core. Properties checked on every
// input: no crash or sanitizer report; framing the input whole and in
// seeded random chunks gives the same messages and the same error; every
// message re-encodes to the bytes it came from; the decoder never buffers
// more than a header plus its limit; each payload run through every
// decoder the client uses either decodes and re-encodes to the same bytes,
// or fails with a problem named.
#include <localvm/libvirt/procedures.hpp>
#include <localvm/libvirt/protocol.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace lv = localvm::libvirt;

constexpr std::size_t limit = 4096; // small, so that the fuzzer reaches it

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "libvirt_decoder property violated: %s\n", what);
    std::abort();
}

struct outcome {
    std::vector<std::string> messages; // re-encoded
    int error = 0;
};

outcome frame(std::string_view in, std::uint32_t seed) {
    outcome out;
    lv::frame_decoder d(limit);
    while (!in.empty()) {
        std::size_t n = in.size();
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 8) % 64;
            n = n < in.size() ? n : in.size();
        }
        std::string_view part = in.substr(0, n);
        in.remove_prefix(n);
        while (!part.empty()) {
            boost::system::error_code ec;
            auto m = d.consume(part, ec);
            if (d.buffered() > limit + lv::length_size)
                fail("buffered more than the limit");
            if (ec) {
                out.error = ec.value();
                return out;
            }
            if (m) {
                std::string again;
                lv::encode_message(again, m->header, m->payload);
                out.messages.push_back(std::move(again));
            }
        }
    }
    return out;
}

template <class T> void roundtrip(std::string_view payload) {
    std::string problem;
    auto v = lv::decode<T>(payload, problem);
    if (!v) {
        if (problem.empty())
            fail("a failed decode named no problem");
        return;
    }
    if (lv::encode(*v) != payload)
        fail("a decoded payload did not re-encode to its bytes");
}

void payloads(std::string_view p) {
    roundtrip<lv::auth_list_ret>(p);
    roundtrip<lv::connect_get_version_ret>(p);
    roundtrip<lv::string_value>(p);
    roundtrip<lv::domain_value>(p);
    roundtrip<lv::domain_get_state_ret>(p);
    roundtrip<lv::domain_get_info_ret>(p);
    roundtrip<lv::callback_id_value>(p);
    roundtrip<lv::lifecycle_msg>(p);
    roundtrip<lv::pool_value>(p);
    roundtrip<lv::vol_value>(p);
    std::string problem;
    if (auto e = lv::decode_error(p, problem); !e && problem.empty())
        fail("a failed error decode named no problem");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto whole = frame(in, 0);
    auto chunked = frame(in, static_cast<std::uint32_t>(size) | 1u);
    if (whole.messages != chunked.messages || whole.error != chunked.error)
        fail("chunked framing differs from whole framing");
    std::size_t at = 0;
    for (auto& m : whole.messages) {
        if (in.substr(at, m.size()) != m)
            fail("a message did not re-encode to its bytes");
        at += m.size();
        payloads(std::string_view(m).substr(lv::length_size + lv::header_size));
    }
    payloads(in); // the raw input as a payload, too
    return 0;
}
