#include "sys/libexec.hpp"

#include "localvm_config.h" // LOCALVM_LIBEXECDIR, from meson

#include <localvm/error.hpp>

#include <cstdlib>
#include <filesystem>

#include <sys/stat.h>
#include <unistd.h>

namespace localvm::sys {

const char* installed_libexec_dir() noexcept {
    return LOCALVM_LIBEXECDIR;
}

std::string helper_program(std::string_view name) {
    const char* dir = std::getenv(libexec_dir_variable);
    const bool overridden = dir && *dir;
    std::filesystem::path path = overridden ? dir : installed_libexec_dir();
    // Absolute: the launch may exec it from another working directory.
    path = std::filesystem::absolute(path / name);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0)
        return path.string();
    throw_error(errc::not_found,
                "localvm's helper program " + path.string() + " is missing or not executable" +
                    (overridden ? std::string(" (") + libexec_dir_variable + "=" + dir + ")"
                                : std::string(" (the directory localvm was built for; set ") +
                                      libexec_dir_variable +
                                      " to the directory that holds it, <build>/src/libexec in "
                                      "a build tree)"));
}

} // namespace localvm::sys
