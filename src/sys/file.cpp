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
    // Another process may remove or add entries meanwhile (a VM's exiting
    // supervisor, removing its console FIFO, in its runtime directory): remove_all
    // then fails with ENOENT (an entry went first) or ENOTEMPTY (one came).
    // The tree is gone once a pass meets neither, so those are tried again,
    // a bounded number of times (a writer that never stops is an error).
    std::error_code ec;
    for (int pass = 0; pass < 8; ++pass) {
        ec.clear();
        std::filesystem::remove_all(p, ec);
        if (ec != std::errc::no_such_file_or_directory && ec != std::errc::directory_not_empty)
            break;
    }
    if (ec)
        throw_error(errc::io_error, "cannot remove " + p.string() + ": " + ec.message());
}

} // namespace localvm::sys
