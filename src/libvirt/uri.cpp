#include <localvm/libvirt/uri.hpp>

#include <algorithm>

namespace localvm::libvirt {

namespace {

int hex(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::optional<std::string> unescape(std::string_view s, bool plus_is_space) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            int hi = i + 1 < s.size() ? hex(s[i + 1]) : -1;
            int lo = i + 2 < s.size() ? hex(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

bool unreserved(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~' || c == '/';
}

std::string escape(std::string_view s) {
    static const char digits[] = "0123456789ABCDEF";
    std::string out;
    for (char c : s) {
        if (unreserved(c)) {
            out.push_back(c);
        } else {
            auto u = static_cast<unsigned char>(c);
            out += {'%', digits[u >> 4], digits[u & 15]};
        }
    }
    return out;
}

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

} // namespace

std::optional<uri> parse_uri(std::string_view text, std::string& problem) {
    auto bad = [&](std::string why) -> std::optional<uri> {
        problem = "libvirt URI '" + std::string(text) + "': " + why;
        return std::nullopt;
    };
    uri u;
    auto colon = text.find("://");
    if (colon == std::string_view::npos)
        return bad("no '://'");
    std::string_view scheme = text.substr(0, colon);
    std::string_view rest = text.substr(colon + 3);
    auto plus = scheme.find('+');
    u.driver = std::string(scheme.substr(0, plus));
    if (u.driver.empty() || !std::all_of(u.driver.begin(), u.driver.end(), name_char))
        return bad("bad driver name '" + u.driver + "'");
    if (plus != std::string_view::npos) {
        auto t = scheme.substr(plus + 1);
        if (t == "unix")
            u.transport = transport_kind::unix_socket;
        else if (t == "ssh")
            u.transport = transport_kind::ssh;
        else
            return bad("unknown transport '" + std::string(t) + "' (unix and ssh are supported)");
    }
    std::string_view query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    auto path = unescape(slash == std::string_view::npos ? "" : rest.substr(slash), false);
    if (!path)
        return bad("bad percent escape in the path");
    u.path = *path;
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        auto user = unescape(authority.substr(0, at), false);
        if (!user || user->empty())
            return bad("bad user name");
        u.user = *user;
        authority = authority.substr(at + 1);
    }
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') { // [IPv6]:port
        auto close = authority.find(']');
        if (close == std::string_view::npos)
            return bad("unterminated '[' in the host");
        u.host = std::string(authority.substr(1, close - 1));
        auto after = authority.substr(close + 1);
        if (!after.empty() && after.front() != ':')
            return bad("junk after ']' in the host");
        if (!after.empty())
            port = after.substr(1);
    } else {
        auto c = authority.rfind(':');
        u.host = std::string(authority.substr(0, c));
        if (c != std::string_view::npos)
            port = authority.substr(c + 1);
    }
    if (!port.empty()) {
        unsigned long v = 0;
        if (port.size() > 5 ||
            !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return bad("bad port '" + std::string(port) + "'");
        v = std::stoul(std::string(port));
        if (v == 0 || v > 65535)
            return bad("bad port '" + std::string(port) + "'");
        u.port = static_cast<std::uint16_t>(v);
    }
    while (!query.empty()) {
        auto amp = query.find('&');
        auto item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (item.empty())
            continue;
        auto eq = item.find('=');
        auto key = unescape(item.substr(0, eq), true);
        auto value = unescape(eq == std::string_view::npos ? "" : item.substr(eq + 1), true);
        if (!key || !value)
            return bad("bad percent escape in the parameters");
        if (*key == "socket")
            u.socket = *value;
        else if (*key == "keyfile")
            u.keyfile = *value;
        else if (*key == "known_hosts")
            u.known_hosts = *value;
        else if (*key == "netcat")
            u.netcat = *value;
        else if (*key == "command")
            u.command = *value;
        else if (*key == "proxy") {
            if (*value == "auto")
                u.proxy = ssh_proxy::automatic;
            else if (*value == "netcat")
                u.proxy = ssh_proxy::netcat;
            else if (*value == "native")
                u.proxy = ssh_proxy::native;
            else
                return bad("bad proxy '" + *value + "' (auto, netcat or native)");
        } else if (*key == "no_tty" || *key == "no_verify" || *key == "mode" || *key == "name")
            continue; // remote driver parameters with nothing to do here
        else
            u.params.emplace_back(*key, *value);
    }
    if (u.transport == transport_kind::ssh && u.host.empty())
        return bad("ssh needs a host");
    if (u.transport == transport_kind::unix_socket &&
        (!u.host.empty() || !u.user.empty() || u.port))
        return bad("a local (unix socket) URI takes no user, host or port; use +ssh");
    if (u.path.empty())
        return bad("no path (e.g. /system)");
    return u;
}

std::string uri::name() const {
    std::string out = driver + "://" + escape(path);
    char sep = '?';
    for (const auto& [k, v] : params) {
        out += sep + escape(k) + "=" + escape(v);
        sep = '&';
    }
    return out;
}

std::string uri::socket_path(std::string_view runtime_dir) const {
    if (!socket.empty())
        return socket;
    if (path == "/session")
        return runtime_dir.empty() ? std::string()
                                   : std::string(runtime_dir) + "/libvirt/libvirt-sock";
    return "/var/run/libvirt/libvirt-sock";
}

} // namespace localvm::libvirt
