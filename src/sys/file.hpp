// Whole files and trees: reading a small file in one call, removing a
// directory tree with an error that names it.
#pragma once

#include <filesystem>
#include <string>

namespace localvm::sys {

/// The whole content of the file at `p` (binary); "" when it is missing or
/// cannot be read. For the small files localvm keeps (state, records,
/// definitions), where a missing file and an empty one mean the same.
std::string read_file(const std::filesystem::path& p);

/// Removes `p` and everything below it; nothing there is fine, and so are
/// entries another process removes or adds meanwhile (the removal is tried
/// again, up to 8 passes). Throws `errc::io_error` "cannot remove P: REASON".
void remove_tree(const std::filesystem::path& p);

} // namespace localvm::sys
