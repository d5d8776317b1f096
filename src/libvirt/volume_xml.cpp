#include "volume_xml.hpp"

#include "domain_xml.hpp"

namespace localvm::libvirt::detail {

std::string overlay_volume_xml(const std::string& name, const std::filesystem::path& base,
                               const std::string& base_format,
                               std::optional<std::uint64_t> capacity_bytes) {
    std::string x = "<volume>\n  <name>" + xml_escape(name, "volume name") + "</name>\n";
    if (capacity_bytes)
        x += "  <capacity unit='bytes'>" + std::to_string(*capacity_bytes) + "</capacity>\n";
    x += "  <target>\n    <format type='qcow2'/>\n  </target>\n"
         "  <backingStore>\n    <path>" +
         xml_escape(base.native(), "base image") + "</path>\n    <format type='" +
         xml_escape(base_format, "base image format") + "'/>\n  </backingStore>\n</volume>\n";
    return x;
}

std::string raw_volume_xml(const std::string& name, std::uint64_t capacity_bytes) {
    const auto bytes = std::to_string(capacity_bytes);
    return "<volume>\n  <name>" + xml_escape(name, "volume name") +
           "</name>\n  <capacity unit='bytes'>" + bytes +
           "</capacity>\n  <allocation unit='bytes'>" + bytes +
           "</allocation>\n  <target>\n    <format type='raw'/>\n  </target>\n</volume>\n";
}

namespace {

// The text between `<tag` (followed by '>', ' ' or '/') and its `</tag>`,
// from `from`; npos-empty when absent. Attributes stay in the result.
std::optional<std::string_view> element(std::string_view xml, std::string_view tag) {
    const std::string open = "<" + std::string(tag);
    const std::string close = "</" + std::string(tag) + ">";
    for (std::size_t at = xml.find(open); at != std::string_view::npos;
         at = xml.find(open, at + 1)) {
        const auto after = at + open.size();
        if (after >= xml.size())
            return std::nullopt;
        const char c = xml[after];
        if (c != '>' && c != ' ' && c != '/')
            continue; // a longer tag name (e.g. <targets>)
        const auto gt = xml.find('>', after);
        if (gt == std::string_view::npos)
            return std::nullopt;
        if (xml[gt - 1] == '/')
            return xml.substr(after, gt - 1 - after); // <tag .../>: its attributes
        const auto end = xml.find(close, gt);
        if (end == std::string_view::npos)
            return std::nullopt;
        return xml.substr(after, end - after); // attributes '>' content
    }
    return std::nullopt;
}

// The content of an element found by `element` (after its start tag's '>').
std::string_view content(std::string_view found) {
    const auto gt = found.find('>');
    return gt == std::string_view::npos ? std::string_view() : found.substr(gt + 1);
}

// The value of attribute `name` in a start tag's text, single or double quoted.
std::optional<std::string_view> attribute(std::string_view tag, std::string_view name) {
    const auto gt = tag.find('>');
    const auto attrs = tag.substr(0, gt);
    const std::string key = " " + std::string(name) + "=";
    const auto at = attrs.find(key);
    if (at == std::string_view::npos || at + key.size() >= attrs.size())
        return std::nullopt;
    const char q = attrs[at + key.size()];
    if (q != '\'' && q != '"')
        return std::nullopt;
    const auto from = at + key.size() + 1;
    const auto to = attrs.find(q, from);
    if (to == std::string_view::npos)
        return std::nullopt;
    return attrs.substr(from, to - from);
}

std::string unescape(std::string_view text) {
    static constexpr std::pair<std::string_view, char> entities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'}};
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        bool replaced = false;
        if (text[i] == '&')
            for (const auto& [name, c] : entities)
                if (text.substr(i, name.size()) == name) {
                    out += c;
                    i += name.size();
                    replaced = true;
                    break;
                }
        if (!replaced)
            out += text[i++];
    }
    return out;
}

} // namespace

std::optional<volume_facts> parse_volume_xml(std::string_view xml, std::string& problem) {
    volume_facts f;
    // The volume's own <target> comes before any <backingStore> (whose
    // format is the backing file's).
    const auto backing_at = xml.find("<backingStore");
    const auto own = xml.substr(0, backing_at);
    auto target = element(own, "target");
    auto format = target ? element(content(*target), "format") : std::nullopt;
    auto type = format ? attribute(*format, "type") : std::nullopt;
    if (!type || type->empty()) {
        problem = "the volume's XML names no format (<target><format type=...>)";
        return std::nullopt;
    }
    f.format = unescape(*type);
    auto capacity = element(own, "capacity");
    auto unit = capacity ? attribute(*capacity, "unit") : std::nullopt;
    const auto digits = capacity ? content(*capacity) : std::string_view();
    if (!capacity || (unit && *unit != "bytes") || digits.empty() || digits.size() > 19 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos) {
        problem = "the volume's XML gives no capacity in bytes";
        return std::nullopt;
    }
    f.capacity_bytes = std::stoull(std::string(digits));
    if (backing_at != std::string_view::npos) {
        auto store = element(xml.substr(backing_at), "backingStore");
        auto path = store ? element(content(*store), "path") : std::nullopt;
        if (path && !content(*path).empty())
            f.backing = unescape(content(*path));
    }
    return f;
}

} // namespace localvm::libvirt::detail
