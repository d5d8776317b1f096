// Internal: preparing an exec before fork, and the async-signal-safe code
// that runs between fork and exec.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "exec_child.hpp"

namespace localvm::process::detail {

/// Everything execve needs, built in the parent so that the forked child
/// only reads memory and makes system calls (no allocation: after fork in a
/// program that may have threads, malloc can deadlock).
class exec_plan {
public:
    /// Resolves argv[0] (PATH of the child's environment when it has no '/'),
    /// builds the environment. Throws `localvm::error`: invalid_argument for an
    /// empty argv or a malformed override, not_found for a program not in PATH,
    /// process_failed for one found only without execute permission.
    exec_plan(const std::vector<std::string>& argv,
              const std::optional<std::vector<std::string>>& environment,
              const std::vector<std::string>& env_overrides,
              const std::filesystem::path& working_directory);
    exec_plan(const exec_plan&) = delete;
    exec_plan& operator=(const exec_plan&) = delete;

    const char* path() const noexcept { return path_.c_str(); }
    char* const* argv() const noexcept { return const_cast<char* const*>(argv_ptrs_.data()); }
    char* const* envp() const noexcept { return const_cast<char* const*>(env_ptrs_.data()); }
    /// Null when the working directory is inherited.
    const char* cwd() const noexcept { return cwd_.empty() ? nullptr : cwd_.c_str(); }
    /// The command for messages ("qemu-img create ...").
    const std::string& command() const noexcept { return command_; }

private:
    std::vector<std::string> args_;
    std::vector<std::string> env_;
    std::string path_;
    std::string cwd_;
    std::string command_;
    std::vector<const char*> argv_ptrs_;
    std::vector<const char*> env_ptrs_;
};

/// In a forked child: chdir (if any), close fds (but `keep_fd`, when >= 3),
/// execve. Returns only on failure, having written an 'E' report to
/// `report_fd`. Async-signal-safe.
void exec_or_report(const exec_plan& plan, int report_fd, int keep_fd = -1) noexcept;

/// What the reports said; the last 'E' and 'P' records win.
struct exec_outcome {
    std::optional<exec_report> error;
    pid_t pid = -1;

    /// Takes one record: an error ('E') or the program's pid ('P').
    void add(const exec_report& r) noexcept {
        if (r.tag == 'E')
            error = r;
        else if (r.tag == 'P')
            pid = r.value;
    }
    /// Takes every whole record in `bytes` (a record cut short is none).
    static exec_outcome parse(std::string_view bytes) noexcept;
};
/// Reads reports from `fd` until EOF (blocking).
exec_outcome read_reports(int fd);

/// Throws the `localvm::error` that an 'E' report stands for: not_found for a
/// missing program or directory, process_failed (with errno's text) otherwise.
[[noreturn]] void throw_exec_failure(const exec_plan& plan, const exec_report& r,
                                     std::string_view extra_path = {});

/// open("/dev/null") with O_CLOEXEC; throws io_error.
int open_dev_null(int flags);

} // namespace localvm::process::detail
