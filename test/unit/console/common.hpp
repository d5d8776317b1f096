// Shared helpers for the console tests: temp dirs and file appends.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "../../common/temp_dir.hpp"

namespace console_test {

/// A fresh directory under $TMPDIR, removed with its contents at scope end.
struct temp_dir : lvtest::temp_dir {
    temp_dir()
        : lvtest::temp_dir("localvm-console") {}
};

/// Appends `text` to `file` (creating it), as QEMU's logfile= does.
inline void append(const std::filesystem::path& file, std::string_view text) {
    std::ofstream out(file, std::ios::binary | std::ios::app);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out)
        throw std::runtime_error("append failed: " + file.string());
}

/// Replaces the contents of `file` with `text`.
inline void overwrite(const std::filesystem::path& file, std::string_view text) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

} // namespace console_test
