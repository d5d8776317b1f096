#include "exec.hpp"

#include "bp2.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"

#include <localvm/error.hpp>
#include <localvm/process/child.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm::process::detail {

namespace bp2 = boost::process::v2;

namespace {

std::string_view env_key(std::string_view entry) {
    return entry.substr(0, entry.find('='));
}

// Where execvp would look when PATH is unset (confstr(_CS_PATH) on glibc).
constexpr const char* default_path = "/bin:/usr/bin";

} // namespace

exec_plan::exec_plan(const std::vector<std::string>& argv,
                     const std::optional<std::vector<std::string>>& environment,
                     const std::vector<std::string>& env_overrides,
                     const std::filesystem::path& working_directory)
    : args_(argv), cwd_(working_directory.string()) {
    if (args_.empty())
        throw_error(errc::invalid_argument, "cannot run a program: the argv is empty");
    if (args_[0].empty())
        throw_error(errc::invalid_argument, "cannot run a program: argv[0] is empty");
    command_ = format_command(args_);

    if (environment) {
        env_ = *environment;
    } else {
        // bp2's view of our environment: a copy taken now, before fork.
        for (auto kv : bp2::environment::current())
            env_.push_back(kv.string());
    }
    for (const auto& o : env_overrides) {
        if (o.empty() || o.front() == '=')
            throw_error(errc::invalid_argument,
                        "environment override '" + o + "' for " + command_ + " has no name");
        // "NAME=value" sets NAME; a bare "NAME" removes it.
        auto key = env_key(o);
        std::erase_if(env_, [&](const std::string& e) { return env_key(e) == key; });
        if (o.find('=') != std::string::npos)
            env_.push_back(o);
    }

    const std::string& name = args_[0];
    if (name.find('/') != std::string::npos) {
        path_ = name; // exec reports ENOENT/EACCES itself, relative to cwd_
    } else {
        // The child's PATH decides, as it would for a shell in that environment.
        std::string path_value = default_path;
        for (const auto& e : env_)
            if (env_key(e) == "PATH")
                path_value = e.substr(5);
        std::vector<bp2::environment::key_value_pair> lookup_env{
            bp2::environment::key_value_pair("PATH=" + path_value)};
        auto found = bp2::environment::find_executable(name, lookup_env);
        if (!found.empty()) {
            path_ = found.string();
        } else {
            // bp2 skips files without execute permission; execvp would report
            // EACCES for them, so look once more to say so.
            std::string_view rest = path_value;
            while (true) {
                auto colon = rest.find(':');
                std::string dir(rest.substr(0, colon));
                auto candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
                struct stat st {};
                if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode))
                    throw_error(errc::process_failed, "cannot execute " + candidate + " (for " +
                                                          command_ + "): " + sys::errno_text(EACCES));
                if (colon == std::string_view::npos)
                    break;
                rest.remove_prefix(colon + 1);
            }
            throw_error(errc::not_found,
                        "program '" + name + "' not found in PATH (" + path_value + ")");
        }
    }

    argv_ptrs_.reserve(args_.size() + 1);
    for (const auto& a : args_)
        argv_ptrs_.push_back(a.c_str());
    argv_ptrs_.push_back(nullptr);
    env_ptrs_.reserve(env_.size() + 1);
    for (const auto& e : env_)
        env_ptrs_.push_back(e.c_str());
    env_ptrs_.push_back(nullptr);
}

void exec_or_report(const exec_plan& plan, int report_fd, int keep_fd) noexcept {
    exec_or_report(plan.path(), plan.argv(), plan.envp(), plan.cwd(), report_fd, keep_fd);
}

exec_outcome read_reports(int fd) {
    exec_outcome out;
    exec_report r;
    for (;;) {
        if (sys::read_full(fd, &r, sizeof r) < sizeof r) {
            if (errno != 0)
                sys::throw_errno(errc::process_failed, "reading the exec status pipe", errno);
            break; // end of file (a record cut short is no record)
        }
        out.add(r);
    }
    return out;
}

exec_outcome exec_outcome::parse(std::string_view bytes) noexcept {
    exec_outcome out;
    exec_report r;
    for (std::size_t at = 0; at + sizeof r <= bytes.size(); at += sizeof r) {
        std::memcpy(&r, bytes.data() + at, sizeof r);
        out.add(r);
    }
    return out;
}

void throw_exec_failure(const exec_plan& plan, const exec_report& r, std::string_view extra_path) {
    const int err = r.value;
    const std::string why = sys::errno_text(err);
    switch (static_cast<exec_stage>(r.stage)) {
    case exec_stage::chdir:
        throw_error(err == ENOENT || err == ENOTDIR ? errc::not_found : errc::process_failed,
                    "cannot enter working directory " + std::string(plan.cwd() ? plan.cwd() : "") +
                        " for " + plan.command() + ": " + why);
    case exec_stage::open_stdout:
    case exec_stage::open_stderr:
        throw_error(errc::io_error, "cannot open " + std::string(extra_path) + " for " +
                                        plan.command() + ": " + why);
    case exec_stage::stdio:
        throw_error(errc::process_failed,
                    "cannot set up stdin/stdout/stderr for " + plan.command() + ": " + why);
    case exec_stage::fork:
        throw_error(errc::process_failed, "cannot fork for " + plan.command() + ": " + why);
    case exec_stage::helper:
        throw_error(err == ENOENT ? errc::not_found : errc::process_failed,
                    "cannot run localvm's supervisor helper " + std::string(extra_path) +
                        " (for " + plan.command() + "): " + why);
    case exec_stage::lock: {
        const bool held = err == EAGAIN || err == EACCES;
        throw_error(held ? errc::already_running : errc::io_error,
                    (held ? "another process holds the lock on " + std::string(extra_path)
                          : "cannot lock " + std::string(extra_path) + ": " + why) +
                        ", for " + plan.command());
    }
    default:
        break;
    }
    if (err == ENOENT)
        throw_error(errc::not_found, "program " + std::string(plan.path()) +
                                         " not found (or its interpreter is missing), for " +
                                         plan.command());
    throw_error(errc::process_failed,
                "cannot execute " + std::string(plan.path()) + " (for " + plan.command() + "): " + why);
}

int open_dev_null(int flags) {
    int fd = ::open("/dev/null", flags | O_CLOEXEC);
    if (fd < 0)
        sys::throw_errno(errc::io_error, "cannot open /dev/null", errno);
    return fd;
}

} // namespace localvm::process::detail
