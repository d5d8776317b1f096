// What `create` learns about a base image before it builds an overlay on it:
// pure functions over `qemu-img info --output=json`.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::qemu::detail {

/// The parts of `qemu-img info --output=json` that decide whether a base
/// image is safe to boot.
struct image_info {
    std::string format; ///< "qcow2", "raw", ...
    /// The other files the image makes QEMU open, each described, e.g.
    /// "backing file /root/.ssh/id_ed25519", "data file /x", "extent y".
    std::vector<std::string> references;
};

/// Parses `qemu-img info --output=json` output (of one image, without
/// --backing-chain). nullopt when it is not JSON or has no format.
std::optional<image_info> parse_image_info(std::string_view json);

/// Why `create` refuses `info` (of `image`) as a base, or "" when it does
/// not: an image that names other files (backing chain, external data file,
/// vmdk extents elsewhere) is refused unless `allow_references`.
std::string refuse_base(const image_info& info, const std::filesystem::path& image,
                        bool allow_references);

/// The argv that runs `qemu-img info --output=json` on `image` under
/// resource limits (util-linux prlimit: 1 GiB of address space, 30 s of
/// CPU), as QEMU's documentation advises for untrusted images.
std::vector<std::string> limited_info_argv(const std::filesystem::path& qemu_img,
                                           const std::filesystem::path& image);

} // namespace localvm::qemu::detail
