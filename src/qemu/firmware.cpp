#include "firmware.hpp"

namespace localvm::qemu::detail {

std::vector<firmware_files> firmware_candidates(arch a, std::string& package) {
    if (a == arch::amd64) {
        package = "ovmf";
        return {{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
                {"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"}};
    }
    package = "qemu-efi-aarch64";
    return {{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"}};
}

std::optional<firmware_files>
find_firmware(arch a, std::string& package,
              const std::function<bool(const std::filesystem::path&)>& exists) {
    for (auto& c : firmware_candidates(a, package))
        if (exists(c.code) && exists(c.vars_template))
            return c;
    return std::nullopt;
}

} // namespace localvm::qemu::detail
