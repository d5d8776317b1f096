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

} // namespace localvm::libvirt::detail
