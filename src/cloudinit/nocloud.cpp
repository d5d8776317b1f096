#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/error.hpp>

#include <algorithm>
#include <cstdio>

#include "detail/utf8.hpp"

namespace localvm::cloudinit {
namespace {

// Characters a YAML reader would treat as a line break, a BOM or a
// non-printable, or that make no sense in a one-line value.
bool forbidden(char32_t cp) {
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF;
}

// Appends `value` as a YAML double-quoted scalar, or throws naming `field`.
void append_quoted(std::string& out, std::string_view value, const std::string& field) {
    out += '"';
    for (std::size_t pos = 0; pos < value.size();) {
        const std::size_t start = pos;
        const auto cp = localvm::detail::next_code_point(value, pos);
        if (!cp)
            throw_error(errc::invalid_argument, "meta-data " + field +
                                                    ": not valid UTF-8 at byte " +
                                                    std::to_string(start));
        if (forbidden(*cp)) {
            char code[16];
            std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(*cp));
            throw_error(errc::invalid_argument, "meta-data " + field +
                                                    ": contains a control character (" + code +
                                                    ") at byte " + std::to_string(start));
        }
        if (*cp == U'"' || *cp == U'\\')
            out += '\\';
        out.append(value.substr(start, pos - start));
    }
    out += '"';
}

} // namespace

std::string render_meta_data(const meta_data& md) {
    if (md.instance_id.empty())
        throw_error(errc::invalid_argument, "meta-data instance-id: empty");
    if (md.instance_id == "." || md.instance_id == ".." ||
        md.instance_id.find('/') != std::string::npos)
        throw_error(errc::invalid_argument,
                    "meta-data instance-id: \"/\", \".\" and \"..\" are not allowed (cloud-init "
                    "uses it as a directory name)");
    std::string out = "instance-id: ";
    append_quoted(out, md.instance_id, "instance-id");
    out += '\n';
    if (!md.local_hostname.empty()) {
        out += "local-hostname: ";
        append_quoted(out, md.local_hostname, "local-hostname");
        out += '\n';
    }
    if (!md.public_keys.empty()) {
        out += "public-keys:\n";
        for (std::size_t i = 0; i < md.public_keys.size(); ++i) {
            const std::string field = "public-keys[" + std::to_string(i) + "]";
            if (md.public_keys[i].empty())
                throw_error(errc::invalid_argument, "meta-data " + field + ": empty");
            out += "  - ";
            append_quoted(out, md.public_keys[i], field);
            out += '\n';
        }
    }
    return out;
}

std::string render_host_key_vendor_data(const ssh_host_key& key) {
    static constexpr std::string_view begin = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
    static constexpr std::string_view end = "-----END OPENSSH PRIVATE KEY-----\n";
    const std::string_view priv = key.private_key;
    if (!priv.starts_with(begin) || !priv.ends_with(end) || priv.size() < begin.size() + end.size())
        throw_error(errc::invalid_argument,
                    "ssh host key: the private key is not an OpenSSH private key file");
    // Between the armour: base64 lines only, so that the block scalar below
    // reads back byte for byte.
    const auto body = priv.substr(begin.size(), priv.size() - begin.size() - end.size());
    for (std::size_t pos = 0; pos < body.size();) {
        const auto nl = body.find('\n', pos);
        const auto line = body.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
        const bool base64 = std::all_of(line.begin(), line.end(), [](char c) {
            return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '+' || c == '/' || c == '=';
        });
        if (nl == std::string_view::npos || line.empty() || !base64)
            throw_error(errc::invalid_argument,
                        "ssh host key: the private key has a line that is not base64");
        pos = nl + 1;
    }
    const std::string_view pub = key.public_key;
    static constexpr std::string_view type = "ssh-ed25519 ";
    const bool printable = std::all_of(pub.begin(), pub.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7F;
    });
    if (!pub.starts_with(type) || pub.size() == type.size() || pub[type.size()] == ' ' ||
        !printable)
        throw_error(
            errc::invalid_argument,
            "ssh host key: the public key is not one \"ssh-ed25519 BASE64 [comment]\" line");
    std::string out = "#cloud-config\nssh_keys:\n  ed25519_private: |\n";
    for (std::size_t pos = 0; pos < priv.size();) {
        const auto nl = priv.find('\n', pos);
        out += "    ";
        out.append(priv.substr(pos, nl + 1 - pos));
        pos = nl + 1;
    }
    out += "  ed25519_public: ";
    append_quoted(out, pub, "ssh host key");
    out += '\n';
    return out;
}

std::string_view default_network_config() noexcept {
    return "version: 2\n"
           "ethernets:\n"
           "  ethernet:\n"
           "    match:\n"
           "      name: \"e*\"\n"
           "    dhcp4: true\n";
}

namespace {

bool all_of_chars(std::string_view s, std::string_view extra) {
    return std::all_of(s.begin(), s.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               extra.find(c) != std::string_view::npos;
    });
}

// A decimal number in [0, max], one to three digits.
bool small_decimal(std::string_view d, int max) {
    if (d.empty() || d.size() > 3)
        return false;
    int v = 0;
    for (char c : d) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    return v <= max;
}

// "A.B.C.D" with each part 0..255, then "/N" (0..32) exactly when
// `with_prefix`.
bool ipv4_shape(std::string_view a, bool with_prefix) {
    auto slash = a.find('/');
    if (with_prefix != (slash != std::string_view::npos))
        return false;
    if (with_prefix && !small_decimal(a.substr(slash + 1), 32))
        return false;
    auto ip = a.substr(0, slash);
    for (int part = 0; part < 4; ++part) {
        auto dot = ip.find('.');
        if ((part < 3) == (dot == std::string_view::npos))
            return false;
        if (!small_decimal(ip.substr(0, dot), 255))
            return false;
        ip = part < 3 ? ip.substr(dot + 1) : std::string_view();
    }
    return true;
}

bool mac_shape(std::string_view m) {
    if (m.size() != 17)
        return false;
    for (std::size_t i = 0; i < m.size(); ++i)
        if (i % 3 == 2 ? m[i] != ':' : !((m[i] >= '0' && m[i] <= '9') || (m[i] >= 'a' && m[i] <= 'f')))
            return false;
    return true;
}

} // namespace

std::string render_network_config(const std::vector<ethernet>& interfaces) {
    std::string out = "version: 2\nethernets:\n";
    std::vector<std::string> seen;
    for (const auto& e : interfaces) {
        const std::string what = "network-config interface \"" + e.name + "\"";
        if (e.name.empty() || e.name.size() > 15 || !all_of_chars(e.name, "_-"))
            throw_error(errc::invalid_argument,
                        what + ": the name must be 1-15 letters, digits, '_' or '-'");
        if (std::find(seen.begin(), seen.end(), e.name) != seen.end())
            throw_error(errc::invalid_argument, what + ": given twice");
        seen.push_back(e.name);
        if (!mac_shape(e.mac))
            throw_error(errc::invalid_argument,
                        what + ": MAC \"" + e.mac + "\" is not xx:xx:xx:xx:xx:xx (lower case)");
        out += "  " + e.name + ":\n    match:\n      macaddress: \"" + e.mac + "\"\n";
        out += e.dhcp4 ? "    dhcp4: true\n" : "    dhcp4: false\n";
        if (!e.addresses.empty())
            out += "    addresses:\n";
        for (const auto& a : e.addresses) {
            if (!ipv4_shape(a, true))
                throw_error(errc::invalid_argument,
                            what + ": address \"" + a + "\" is not A.B.C.D/N");
            out += "      - \"" + a + "\"\n";
        }
    }
    return out;
}

std::string render_hosts_cloud_config(const std::vector<host_entry>& hosts) {
    if (hosts.empty())
        return {};
    std::string out = "write_files:\n  - path: /etc/hosts\n    append: true\n    defer: true\n"
                      "    content: |\n";
    for (const auto& h : hosts) {
        if (!ipv4_shape(h.address, false))
            throw_error(errc::invalid_argument,
                        "hosts entry \"" + h.name + "\": \"" + h.address + "\" is not A.B.C.D");
        if (h.name.empty() || h.name.size() > 64 || !all_of_chars(h.name, "._-"))
            throw_error(errc::invalid_argument,
                        "hosts entry \"" + h.name +
                            "\": the name must be 1-64 letters, digits, '.', '_' or '-'");
        out += "      " + h.address + " " + h.name + "\n";
    }
    return out;
}

std::vector<iso_file> seed_files(const seed& s) {
    std::vector<iso_file> files;
    files.push_back({"meta-data", s.raw_meta_data ? *s.raw_meta_data : render_meta_data(s.meta)});
    files.push_back({"user-data", s.user_data});
    if (s.network_config)
        files.push_back({"network-config", *s.network_config});
    if (s.vendor_data)
        files.push_back({"vendor-data", *s.vendor_data});
    return files;
}

void write_seed(const seed& s, const byte_writer& out, const iso_options& options) {
    write_iso(seed_files(s), out, options);
}

void write_seed_file(const std::filesystem::path& path, const seed& s, const iso_options& options) {
    write_iso_file(path, seed_files(s), options);
}

} // namespace localvm::cloudinit
