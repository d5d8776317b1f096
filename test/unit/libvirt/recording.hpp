// Sessions recorded between a libvirt client and a real libvirtd
// (data/*.txt, see data/README.md), loaded for the unit tests: each message
// with its side, bytes, decoded header and payload, and ways to find them.
#pragma once

#include <localvm/libvirt/procedures.hpp>
#include <localvm/libvirt/protocol.hpp>

#include <boost/test/unit_test.hpp>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace libvirt_test {

namespace lv = localvm::libvirt;

struct recorded {
    char from; // 'C' client, 'S' server
    std::string bytes;
    lv::header header;
    std::string payload;
};

inline std::string unhex(const std::string& h) {
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
    return out;
}

/// The messages of the recording at `path`, in the order they passed.
inline std::vector<recorded> load_recording(const std::string& path) {
    std::ifstream in(path);
    BOOST_TEST_REQUIRE(in.good(), "cannot open " << path);
    std::vector<recorded> out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        recorded r;
        r.from = line[0];
        r.bytes = unhex(line.substr(2));
        auto h = lv::decode_header(std::string_view(r.bytes).substr(lv::length_size));
        BOOST_TEST_REQUIRE(h.has_value());
        r.header = *h;
        r.payload = r.bytes.substr(lv::length_size + lv::header_size);
        out.push_back(std::move(r));
    }
    return out;
}

/// The first recorded message from `from` matching `pred`.
inline const recorded& find(const std::vector<recorded>& s, char from,
                            const std::function<bool(const lv::header&)>& pred) {
    for (auto& r : s)
        if (r.from == from && pred(r.header))
            return r;
    BOOST_FAIL("no such message in the recording");
    throw;
}

inline std::int32_t num(lv::remote_procedure p) {
    return static_cast<std::int32_t>(p);
}

/// Matches messages of `remote_program`'s procedure `p` (other programs reuse
/// the small numbers: keepalive's PONG is procedure 2, as is CONNECT_CLOSE).
inline std::function<bool(const lv::header&)> remote(lv::remote_procedure p) {
    return [p](const lv::header& h) {
        return h.program == lv::remote_program && h.procedure == num(p);
    };
}

/// The daemon's reply to the recorded call `c`.
inline const recorded& reply_to(const std::vector<recorded>& s, const recorded& c) {
    return find(s, 'S', [&](const lv::header& h) {
        return h.type == lv::message_type::reply && h.serial == c.header.serial &&
               h.program == c.header.program;
    });
}

} // namespace libvirt_test
