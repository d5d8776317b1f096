// The storage volume XML of the libvirt backend's volumes. Pure.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::libvirt::detail {

/// A qcow2 volume `name` on the backing file `base` of format
/// `base_format` ("qcow2", "raw", ...): libvirt makes it with qemu-img.
/// `capacity_bytes`: the virtual size; nullopt keeps the base's. Every text
/// escaped (throws as `xml_escape`).
std::string overlay_volume_xml(const std::string& name, const std::filesystem::path& base,
                               const std::string& base_format,
                               std::optional<std::uint64_t> capacity_bytes = std::nullopt);

/// A raw volume `name` of `capacity_bytes`, fully allocated, for an upload.
std::string raw_volume_xml(const std::string& name, std::uint64_t capacity_bytes);

/// What the libvirt backend reads from a volume's XML as the daemon gives it
/// (STORAGE_VOL_GET_XML_DESC): enough to build an overlay on the volume.
struct volume_facts {
    std::string format;                 ///< `<target><format type=...>`: "qcow2", "raw", ...
    std::optional<std::string> backing; ///< `<backingStore><path>`, unescaped, when it has one
    std::uint64_t capacity_bytes = 0;   ///< `<capacity unit='bytes'>`
};

/// Reads `xml` (the daemon's own output: elements as libvirt writes them,
/// attributes in single or double quotes, text escaped with the five XML
/// entities). Returns nullopt, with `problem` saying what is missing, when
/// there is no `<target>` with a `<format type=...>` or no capacity in bytes.
std::optional<volume_facts> parse_volume_xml(std::string_view xml, std::string& problem);

} // namespace localvm::libvirt::detail
