#include <localvm/error.hpp>
#include <localvm/qemu/forward.hpp>

#include <charconv>
#include <vector>

#include <arpa/inet.h>

namespace localvm::qemu {
namespace {

std::optional<unsigned> parse_port(std::string_view s) {
    if (s.empty() || s.size() > 5)
        return std::nullopt;
    unsigned v = 0;
    auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (err != std::errc() || end != s.data() + s.size() || v > 65535)
        return std::nullopt;
    return v;
}

} // namespace

std::optional<port_forward> parse_port_forward(std::string_view text,
                                               boost::system::error_code& ec) {
    std::vector<std::string_view> parts;
    for (std::size_t from = 0;;) {
        auto colon = text.find(':', from);
        parts.push_back(text.substr(from, colon == std::string_view::npos ? colon : colon - from));
        if (colon == std::string_view::npos)
            break;
        from = colon + 1;
    }
    port_forward f;
    std::optional<unsigned> host, guest;
    bool ok = parts.size() <= 3;
    if (ok) {
        guest = parse_port(parts.back());
        ok = guest && *guest != 0;
    }
    if (ok && parts.size() >= 2) {
        host = parse_port(parts[parts.size() - 2]);
        ok = host.has_value();
    }
    if (ok && parts.size() == 3) {
        in_addr a{};
        std::string addr(parts[0]);
        ok = ::inet_pton(AF_INET, addr.c_str(), &a) == 1;
        f.host_address = addr;
    }
    if (!ok) {
        ec = make_error_code(errc::invalid_argument);
        return std::nullopt;
    }
    f.host_port = static_cast<std::uint16_t>(host.value_or(0));
    f.guest_port = static_cast<std::uint16_t>(*guest);
    return f;
}

std::string format_port_forward(const port_forward& f) {
    return f.host_address + ":" + std::to_string(f.host_port) + ":" + std::to_string(f.guest_port);
}

} // namespace localvm::qemu
