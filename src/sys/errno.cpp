#include "sys/errno.hpp"

#include <system_error>

namespace localvm::sys {

std::string errno_text(int err) {
    return std::system_category().message(err);
}

void throw_errno(errc code, const std::string& what, int err) {
    throw_error(code, what + ": " + errno_text(err));
}

} // namespace localvm::sys
