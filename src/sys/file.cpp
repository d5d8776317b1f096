#include "sys/file.hpp"

#include <localvm/error.hpp>

#include <fstream>
#include <sstream>

namespace localvm::sys {

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void remove_tree(const std::filesystem::path& p) {
    std::error_code ec;
    std::filesystem::remove_all(p, ec);
    if (ec)
        throw_error(errc::io_error, "cannot remove " + p.string() + ": " + ec.message());
}

} // namespace localvm::sys
