// The storage volume XML of the libvirt backend's volumes. Pure.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

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

} // namespace localvm::libvirt::detail
