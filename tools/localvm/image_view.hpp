// How the `image` command and `--image` show fetches and the cache: pure
// text rendering, unit tested.
#pragma once

#include <localvm/image/cache.hpp>
#include <localvm/image/fetch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace localvm::cli {

/// "812 B", "1.5 KiB", "300.0 MiB", "2.1 GiB".
std::string human_bytes(std::uint64_t n);

/// A progress bar within `width` columns: "[=====>    ]  45% 135.0 MiB/300.0 MiB 85.2 MiB/s";
/// without a total, "135.0 MiB 85.2 MiB/s"; while waiting, "waiting for another
/// process fetching it".
std::string render_fetch_progress(const image::fetch_progress& p, std::size_t width);

/// `image list`: a header and one line per image, "KEY  SIZE  DIGEST  URL"
/// (key and digest shortened to 12 hex digits), or "no cached images".
std::string render_image_list(const std::vector<image::cached_image>& images);

} // namespace localvm::cli
