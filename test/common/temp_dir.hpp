// A fresh directory under $TMPDIR (or /tmp) for one test, removed with all
// it holds when the test is done.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include <stdlib.h>

namespace lvtest {

class temp_dir {
public:
    /// Makes "<tmp>/<prefix>-XXXXXX". Throws std::runtime_error when it cannot.
    explicit temp_dir(std::string_view prefix = "localvm-test") {
        auto templ =
            (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
        if (!::mkdtemp(templ.data()))
            throw std::runtime_error("mkdtemp " + templ + " failed");
        path = templ;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    std::filesystem::path operator/(std::string_view name) const { return path / name; }

    std::filesystem::path path;
};

} // namespace lvtest
