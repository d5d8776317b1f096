// Internal helpers shared by the argv builders and the process-running calls.
#pragma once

#include <localvm/ssh/command.hpp>

#include <string>
#include <vector>

namespace localvm::ssh::detail {

/// Why `t` cannot be used (for errc::invalid_argument), or empty when it can.
std::string target_problem(const target& t);

/// True when ssh's stderr lines say the server's host key was not the one
/// known_hosts holds ("REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key
/// verification failed", "No ... host key is known for ... strict checking").
bool host_key_rejected(const std::vector<std::string>& stderr_lines);

/// The diagnostic for a rejected host key of `t`, with the informative lines
/// of ssh's stderr (the offered key's fingerprint, ssh's verdict) rather than
/// its warning banner.
std::string host_key_rejected_text(const target& t, const std::vector<std::string>& stderr_lines);

} // namespace localvm::ssh::detail
