// Fuzz target for the QMP sans-io core. Properties checked on every input:
// no crash or sanitizer report; decoding the input whole and in random
// chunks gives the same messages and errors; the decoder never buffers more
// than its limit; encoded commands are one line of JSON naming the command.
#include <localvm/qmp/protocol.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace qmp = localvm::qmp;
namespace json = boost::json;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "qmp_decoder property violated: %s\n", what);
    std::abort();
}

std::string describe(const qmp::message& m) {
    struct {
        std::string operator()(const qmp::greeting& g) const {
            std::string s = "G" + std::to_string(g.qemu.major) + "." + std::to_string(g.qemu.minor) +
                            "." + std::to_string(g.qemu.micro) + g.qemu.package;
            for (auto& c : g.capabilities)
                s += "," + c;
            return s;
        }
        std::string operator()(const qmp::success& s) const {
            return "S" + json::serialize(s.id) + json::serialize(s.result);
        }
        std::string operator()(const qmp::failure& f) const {
            return "F" + json::serialize(f.id) + f.error_class + ":" + f.desc;
        }
        std::string operator()(const qmp::event& e) const {
            return "E" + e.name + json::serialize(e.data) + std::to_string(e.seconds) + "." +
                   std::to_string(e.microseconds);
        }
    } v;
    return std::visit(v, m);
}

std::vector<std::string> decode(std::string_view in, std::size_t max, std::uint32_t seed) {
    qmp::decoder d(max);
    std::vector<std::string> out;
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
            auto m = d.consume(chunk, ec);
            if (chunk.size() == before && !ec && !m)
                fail("consume made no progress");
            if (ec)
                out.push_back("!" + ec.message());
            else if (m)
                out.push_back(describe(*m));
            if (d.buffered() > max + 1)
                fail("decoder buffered more than its limit");
        }
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    static const std::size_t limits[] = {qmp::default_max_message_size, 64, 300};
    std::size_t max = limits[size % 3];
    auto whole = decode(in, max, 0);
    std::uint32_t seed = 2166136261u;
    for (auto c : in.substr(0, 16))
        seed = (seed ^ static_cast<unsigned char>(c)) * 16777619u;
    if (decode(in, max, seed | 1) != whole)
        fail("chunked decoding differs from whole decoding");

    // The encoder: whatever the name, one line of JSON.
    auto name = in.substr(0, std::min<std::size_t>(in.size(), 40));
    qmp::encoder e;
    std::string cmd;
    json::object args;
    if (size > 40)
        args["data"] = json::string(in.substr(40, 40));
    auto id = e.encode(cmd, name, args, size % 2 == 1);
    if (id != 1 || cmd.size() < 2 || cmd.substr(cmd.size() - 2) != "\r\n" ||
        cmd.find('\n') != cmd.size() - 1)
        fail("encoded command is not one line");
    boost::system::error_code ec;
    auto v = json::parse(cmd, ec);
    if (!ec) { // (names with invalid UTF-8 may not parse back)
        auto& o = v.as_object();
        auto* x = o.if_contains(size % 2 == 1 ? "exec-oob" : "execute");
        if (!x || x->as_string() != json::string_view(name.data(), name.size()))
            fail("encoded command name differs");
        if (qmp::numeric_id(o.at("id")) != 1u)
            fail("encoded id differs");
    }
    return 0;
}
