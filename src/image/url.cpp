#include <localvm/image/url.hpp>

#include <algorithm>
#include <charconv>

namespace localvm::image {
namespace {

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
}

bool has_bad_char(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
    });
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

// %XX decoding for file URLs; nullopt on a malformed escape or a NUL.
std::optional<std::string> percent_decoded(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size())
            return std::nullopt;
        int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

image::compression compression_of(std::string_view path) {
    if (path.ends_with(".xz"))
        return image::compression::xz;
    if (path.ends_with(".gz"))
        return image::compression::gzip;
    return image::compression::none;
}

std::uint16_t default_port(image::scheme s) {
    return s == image::scheme::https ? 443 : 80;
}

std::string canonical_text(const url& u) {
    if (u.scheme == image::scheme::file)
        return "file://" + u.path.string();
    return std::string(u.scheme == image::scheme::https ? "https" : "http") + "://" + authority(u) +
           u.target;
}

std::optional<url> file_url(std::string_view path_text, const std::filesystem::path& cwd,
                            std::string& problem) {
    if (path_text.empty()) {
        problem = "empty path";
        return std::nullopt;
    }
    if (path_text.find('\0') != std::string_view::npos) {
        problem = "path contains a NUL character";
        return std::nullopt;
    }
    std::filesystem::path p(path_text);
    if (p.is_relative()) {
        if (!cwd.is_absolute()) {
            problem = "relative path " + std::string(path_text) + " without an absolute directory";
            return std::nullopt;
        }
        p = cwd / p;
    }
    url u;
    u.scheme = image::scheme::file;
    u.path = p.lexically_normal();
    u.compression = compression_of(u.path.string());
    u.text = canonical_text(u);
    return u;
}

// http(s)://AUTHORITY/TARGET after the scheme's "://".
std::optional<url> http_url(image::scheme s, std::string_view rest, std::string& problem) {
    if (auto hash = rest.find('#'); hash != std::string_view::npos)
        rest = rest.substr(0, hash);
    if (has_bad_char(rest)) {
        problem = "URL contains a space or a control character";
        return std::nullopt;
    }
    auto slash = rest.find_first_of("/?");
    std::string_view auth = rest.substr(0, slash);
    std::string target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (target.front() == '?')
        target = "/" + target;
    if (auth.find('@') != std::string_view::npos) {
        problem = "URL has user information (user@host): not supported";
        return std::nullopt;
    }
    url u;
    u.scheme = s;
    u.port = default_port(s);
    std::string_view host = auth, port_text;
    if (auth.starts_with("[")) {
        auto close = auth.find(']');
        if (close == std::string_view::npos) {
            problem = "URL has an unterminated IPv6 literal";
            return std::nullopt;
        }
        host = auth.substr(1, close - 1);
        auto after = auth.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                problem = "URL has junk after its IPv6 literal";
                return std::nullopt;
            }
            port_text = after.substr(1);
            if (port_text.empty()) {
                problem = "URL has an empty port";
                return std::nullopt;
            }
        }
    } else if (auto colon = auth.find(':'); colon != std::string_view::npos) {
        host = auth.substr(0, colon);
        port_text = auth.substr(colon + 1);
        if (port_text.empty()) {
            problem = "URL has an empty port";
            return std::nullopt;
        }
    }
    if (host.empty()) {
        problem = "URL has no host";
        return std::nullopt;
    }
    if (!port_text.empty()) {
        unsigned long port = 0;
        auto [end, err] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (err != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
            port > 65535) {
            problem = "URL has a bad port \"" + std::string(port_text) + "\" (expected 1..65535)";
            return std::nullopt;
        }
        u.port = static_cast<std::uint16_t>(port);
    }
    u.host = lowered(host);
    u.target = std::move(target);
    u.compression = compression_of(u.target.substr(0, u.target.find('?')));
    u.text = canonical_text(u);
    return u;
}

} // namespace

std::string authority(const url& u) {
    std::string h = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    if (u.port != default_port(u.scheme))
        h += ":" + std::to_string(u.port);
    return h;
}

std::optional<url> parse_url(std::string_view text, const std::filesystem::path& cwd,
                             std::string& problem) {
    auto sep = text.find("://");
    if (sep == std::string_view::npos)
        return file_url(text, cwd, problem);
    std::string scheme_text = lowered(text.substr(0, sep));
    std::string_view rest = text.substr(sep + 3);
    if (scheme_text == "http")
        return http_url(image::scheme::http, rest, problem);
    if (scheme_text == "https")
        return http_url(image::scheme::https, rest, problem);
    if (scheme_text == "file") {
        // file:///path or file://localhost/path; any other host is remote.
        if (rest.starts_with("localhost/"))
            rest.remove_prefix(9);
        if (!rest.starts_with("/")) {
            problem = "file URL names a host (" + std::string(rest.substr(0, rest.find('/'))) +
                      "): only file:///absolute/path is supported";
            return std::nullopt;
        }
        auto decoded = percent_decoded(rest);
        if (!decoded) {
            problem = "file URL has a malformed %-escape";
            return std::nullopt;
        }
        return file_url(*decoded, "/", problem);
    }
    problem = "unsupported URL scheme \"" + scheme_text + "\" (expected http, https or file)";
    return std::nullopt;
}

std::optional<url> resolve_location(const url& base, std::string_view location,
                                    std::string& problem) {
    if (location.empty()) {
        problem = "redirect without a Location";
        return std::nullopt;
    }
    std::optional<url> next;
    if (location.find("://") != std::string_view::npos) {
        auto scheme_text = lowered(location.substr(0, location.find("://")));
        if (scheme_text != "http" && scheme_text != "https") {
            problem = "redirect to a non-HTTP URL: " + std::string(location);
            return std::nullopt;
        }
        next = parse_url(location, "/", problem);
    } else if (location.starts_with("//")) {
        next = parse_url(std::string(base.scheme == image::scheme::https ? "https:" : "http:") +
                             std::string(location),
                         "/", problem);
    } else {
        std::string target;
        if (location.starts_with("/")) {
            target = std::string(location);
        } else {
            std::string dir = base.target.substr(0, base.target.find('?'));
            dir = dir.substr(0, dir.rfind('/') + 1);
            target = dir + std::string(location);
        }
        next = parse_url(std::string(base.scheme == image::scheme::https ? "https://" : "http://") +
                             authority(base) + target,
                         "/", problem);
    }
    if (!next)
        return std::nullopt;
    if (base.scheme == image::scheme::https && next->scheme == image::scheme::http) {
        problem = "refusing a redirect from https to http: " + next->text;
        return std::nullopt;
    }
    next->compression = base.compression;
    return next;
}

} // namespace localvm::image
