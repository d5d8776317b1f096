// Internal: the text of an errno value, and the `localvm::error` that names
// a failed system call. One wording for every layer.
#pragma once

#include <localvm/error.hpp>

#include <string>

namespace localvm::sys {

/// The text of `err` ("No such file or directory"), from
/// `std::system_category()`: unlike `strerror`, safe whatever other threads
/// do. Unknown values give "Unknown error N".
std::string errno_text(int err);

/// Throws `localvm::error` with `code` and "<what>: <errno_text(err)>".
/// Capture `errno` before building `what` (an allocation may change it):
/// `int err = errno; throw_errno(code, "cannot open " + p, err);`.
[[noreturn]] void throw_errno(errc code, const std::string& what, int err);

} // namespace localvm::sys
