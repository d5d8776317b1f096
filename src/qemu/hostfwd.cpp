#include "hostfwd.hpp"

#include <algorithm>
#include <sstream>

namespace localvm::qemu::detail {
namespace {

bool same(const port_forward& a, const port_forward& b) {
    return same_listener(a, b) && a.guest_port == b.guest_port;
}

std::string one_line(std::string_view s) {
    std::string out;
    for (char c : s)
        out.push_back(c == '\r' || c == '\n' || c == '\t' ? ' ' : c);
    auto first = out.find_first_not_of(' ');
    if (first == std::string::npos)
        return {};
    out.erase(0, first);
    out.erase(out.find_last_not_of(' ') + 1);
    return out;
}

} // namespace

std::vector<port_forward> parse_usernet_forwards(std::string_view text) {
    std::vector<port_forward> out;
    std::istringstream in{std::string(text)};
    for (std::string line; std::getline(in, line);) {
        // "  TCP[HOST_FORWARD]  15  127.0.0.1 45678  10.0.2.15  8080  0  0"
        std::istringstream words(line);
        std::string proto, fd, src, dst;
        unsigned host = 0, guest = 0;
        if (!(words >> proto >> fd >> src >> host >> dst >> guest) ||
            proto != "TCP[HOST_FORWARD]" || host == 0 || host > 65535 || guest == 0 ||
            guest > 65535)
            continue;
        port_forward f;
        f.host_address = src;
        f.host_port = static_cast<std::uint16_t>(host);
        f.guest_port = static_cast<std::uint16_t>(guest);
        out.push_back(std::move(f));
    }
    return out;
}

std::string hostfwd_add_command(const port_forward& f) {
    return "hostfwd_add tcp:" + f.host_address + ":" + std::to_string(f.host_port) + "-:" +
           std::to_string(f.guest_port);
}

std::string hostfwd_remove_command(const port_forward& f) {
    return "hostfwd_remove tcp:" + f.host_address + ":" + std::to_string(f.host_port);
}

std::string hostfwd_add_failure(std::string_view reply) { return one_line(reply); }

bool hostfwd_removed(std::string_view reply) {
    auto line = one_line(reply);
    return line.starts_with("host forwarding rule for ") && line.ends_with(" removed");
}

std::vector<port_forward> new_forwards(const std::vector<port_forward>& before,
                                       const std::vector<port_forward>& after) {
    std::vector<bool> matched(before.size(), false);
    std::vector<port_forward> out;
    for (const auto& a : after) {
        bool found = false;
        for (std::size_t i = 0; i < before.size() && !found; ++i)
            if (!matched[i] && same(before[i], a))
                matched[i] = found = true;
        if (!found)
            out.push_back(a);
    }
    return out;
}

std::optional<port_forward> made_for(const std::vector<port_forward>& fresh,
                                     const port_forward& wanted) {
    auto it = std::find_if(fresh.begin(), fresh.end(), [&](const port_forward& f) {
        return f.host_address == wanted.host_address && f.guest_port == wanted.guest_port &&
               (wanted.host_port == 0 || f.host_port == wanted.host_port);
    });
    if (it == fresh.end())
        return std::nullopt;
    return *it;
}

bool same_listener(const port_forward& a, const port_forward& b) noexcept {
    return a.host_address == b.host_address && a.host_port == b.host_port;
}

} // namespace localvm::qemu::detail
