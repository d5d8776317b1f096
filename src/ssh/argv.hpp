// Internal helpers shared by the argv builders and the process-running calls.
#pragma once

#include <localvm/ssh/command.hpp>

#include <string>

namespace localvm::ssh::detail {

/// Why `t` cannot be used (for errc::invalid_argument), or empty when it can.
std::string target_problem(const target& t);

} // namespace localvm::ssh::detail
