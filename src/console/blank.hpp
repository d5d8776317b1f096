// Internal: what counts as a blank console line, for every console reader.
#pragma once

#include <string_view>

namespace localvm::console::detail {

/// True when `line` holds nothing but spaces and tabs (or nothing).
inline bool blank(std::string_view line) {
    return line.find_first_not_of(" \t") == std::string_view::npos;
}

} // namespace localvm::console::detail
