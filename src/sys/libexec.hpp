// Internal: where localvm's helper programs are. The long-lived process
// that localvm leaves behind a VM (the supervisor under QEMU, which also
// drains its console) is a small program of its own, installed in
// <prefix>/<libexecdir>/localvm and exec'd, not forks of the caller: a fork
// would keep a copy-on-write image of the caller's memory for the VM's
// whole life.
#pragma once

#include <string>
#include <string_view>

namespace localvm::sys {

/// The environment variable that names the directory of the helper
/// programs instead of the one compiled in: for a build tree (meson's test
/// runs and `meson devenv` set it to <build>/src/libexec) or a relocated
/// install.
inline constexpr const char* libexec_dir_variable = "LOCALVM_LIBEXECDIR";

/// The directory compiled in: <prefix>/<libexecdir>/localvm, absolute.
const char* installed_libexec_dir() noexcept;

/// The absolute path of helper program `name` ("localvm-supervise"): in
/// $LOCALVM_LIBEXECDIR when that is set and not empty, else in
/// `installed_libexec_dir()`. Throws `localvm::error`: `errc::not_found`
/// naming the path, where it came from and how to fix it when no executable
/// file is there.
std::string helper_program(std::string_view name);

} // namespace localvm::sys
