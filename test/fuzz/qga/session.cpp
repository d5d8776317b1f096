// Fuzz target for the guest agent's sans-io session and reply parsers.
// The input's first byte picks the size limit and the sync token; the rest
// is what the agent sends. A driver loop plays the client: sync, then calls
// (silent ones too), syncing again whenever the session drops out of step.
// Properties checked on every input: no crash or sanitizer report; every
// consume makes progress; feeding the input whole and in random chunks gives
// the same outcomes and errors; requests are lines of JSON (the sync one
// after the 0xFF marker); base64 decoding inverts encoding.
#include <localvm/qga/commands.hpp>
#include <localvm/qga/protocol.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "../../../src/qga/base64.hpp"

namespace {

namespace qga = localvm::qga;
namespace qmp = localvm::qmp;
namespace json = boost::json;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "qga_session property violated: %s\n", what);
    std::abort();
}

void check_request(std::string_view out, bool marked) {
    if (marked) {
        if (out.empty() || out.front() != qga::sync_marker)
            fail("sync request without marker");
        out.remove_prefix(1);
    }
    while (!out.empty()) {
        auto nl = out.find('\n');
        if (nl == std::string_view::npos || nl == 0 || out[nl - 1] != '\r')
            fail("request not ended by CRLF");
        boost::system::error_code ec;
        auto v = json::parse(out.substr(0, nl - 1), ec);
        if (ec || !v.is_object() || !v.as_object().contains("execute"))
            fail("request is not a JSON command");
        out.remove_prefix(nl + 1);
    }
}

// Runs every reply parser on a result: none may crash.
std::string parse_all(const json::value& v) {
    boost::system::error_code ec;
    std::string s;
    s += qga::parse_exec_pid(v, ec) ? "p" : "-";
    s += qga::parse_exec_status(v, ec) ? "s" : "-";
    s += qga::parse_file_handle(v, ec) ? "h" : "-";
    s += qga::parse_file_read(v, ec) ? "r" : "-";
    s += qga::parse_file_write(v, ec) ? "w" : "-";
    s += qga::parse_network_interfaces(v, ec) ? "n" : "-";
    return s;
}

std::vector<std::string> play(std::string_view in, std::size_t max, std::uint64_t token,
                              std::uint32_t seed) {
    qga::session s(max);
    std::vector<std::string> log;
    std::string out;
    s.begin_sync(out, token);
    check_request(out, true);
    int calls = 0;
    while (!in.empty()) {
        std::size_t n = in.size();
        if (seed) { // xorshift32 chunk sizes 1..16
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            n = std::min<std::size_t>(n, 1 + seed % 16);
        }
        auto chunk = in.substr(0, n);
        in.remove_prefix(n);
        while (!chunk.empty()) {
            boost::system::error_code ec;
            auto before = chunk.size();
            auto o = s.consume(chunk, ec);
            if (chunk.size() == before && !ec && !o)
                fail("consume made no progress");
            if (ec)
                log.push_back("!" + ec.message());
            if (o) {
                if (std::holds_alternative<qga::synced>(*o)) {
                    log.push_back("synced");
                } else if (auto* x = std::get_if<qmp::success>(&*o)) {
                    log.push_back("S" + json::serialize(x->id) + json::serialize(x->result) +
                                  parse_all(x->result));
                } else {
                    auto& f = std::get<qmp::failure>(*o);
                    log.push_back("F" + json::serialize(f.id) + f.error_class + ":" + f.desc);
                }
            }
            // The client's next step.
            out.clear();
            if (s.state() == qga::session_state::unsynced) {
                s.begin_sync(out, ++token);
                check_request(out, true);
            } else if (s.state() == qga::session_state::ready) {
                boost::system::error_code cec;
                auto id = s.begin_call(out, calls % 3 == 2 ? "guest-shutdown" : "guest-ping", {},
                                       calls % 3 != 2, cec);
                ++calls;
                if (cec || id == 0 || s.call_id() != id)
                    fail("a ready session refused a call");
                check_request(out, false);
            }
        }
    }
    return log;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    static const std::size_t limits[] = {qmp::default_max_message_size, 64, 300, 20};
    const std::size_t max = limits[data[0] % 4];
    const std::uint64_t token = data[0] / 4; // small: the corpus can hit it
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    auto whole = play(in, max, token, 0);
    std::uint32_t seed = 2166136261u;
    for (auto c : in.substr(0, 16))
        seed = (seed ^ static_cast<unsigned char>(c)) * 16777619u;
    auto chunked = play(in, max, token, seed | 1);
    if (chunked != whole) {
        for (auto& l : whole)
            std::fprintf(stderr, "whole:   %s\n", l.c_str());
        for (auto& l : chunked)
            std::fprintf(stderr, "chunked: %s\n", l.c_str());
        fail("chunked feeding differs from whole feeding");
    }

    std::string coded;
    localvm::qga::detail::base64_encode(in, coded);
    if (localvm::qga::detail::base64_decode(coded) != std::string(in))
        fail("base64 does not round-trip");
    if (auto d = localvm::qga::detail::base64_decode(in)) {
        std::string again;
        localvm::qga::detail::base64_encode(*d, again);
        if (again != in)
            fail("base64 decoding accepted a non-canonical encoding");
    }
    return 0;
}
