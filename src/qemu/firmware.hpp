// Where the UEFI firmware for a guest architecture is on this host.
#pragma once

#include <localvm/qemu/arguments.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace localvm::qemu::detail {

/// A split firmware: the read-only code image and the template the VM's own
/// variable store is copied from (both must exist: a combined image such as
/// Debian's /usr/share/ovmf/OVMF.fd has no separate store, and QEMU needs a
/// store of exactly the template's size).
struct firmware_files {
    std::filesystem::path code;
    std::filesystem::path vars_template;
};

/// The split firmware images to look for, best first, and the Debian
/// package that provides them.
std::vector<firmware_files> firmware_candidates(arch a, std::string& package);

/// The first candidate whose two files both exist according to `exists`.
std::optional<firmware_files>
find_firmware(arch a, std::string& package,
              const std::function<bool(const std::filesystem::path&)>& exists);

} // namespace localvm::qemu::detail
