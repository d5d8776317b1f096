#include "exec.hpp"

#include "bp2.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"

#include <localvm/error.hpp>
#include <localvm/process/child.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <linux/close_range.h>
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

void write_report(int fd, const exec_report& r) noexcept {
    sys::write_all(fd, &r, sizeof r); // a failure leaves the parent nothing to read: it says so
}

bool install_stdio(int fds[3]) noexcept {
    // A source that already sits on 0..2 could be overwritten by an earlier
    // dup2: move such sources above 2 first.
    for (int i = 0; i < 3; ++i) {
        if (fds[i] >= 0 && fds[i] < 3 && fds[i] != i) {
            int moved = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0)
                return false;
            fds[i] = moved;
        }
    }
    for (int i = 0; i < 3; ++i) {
        if (fds[i] < 0)
            continue;
        if (fds[i] == i) {
            if (::fcntl(i, F_SETFD, 0) < 0)
                return false;
        } else if (::dup2(fds[i], i) < 0) {
            return false;
        }
    }
    return true;
}

void reset_signals() noexcept {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    ::sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; ++s)
        ::sigaction(s, &sa, nullptr); // EINVAL for SIGKILL/SIGSTOP and glibc's own: fine
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

namespace {

// Marks [first, last] close-on-exec.
void cloexec_range(unsigned first, unsigned last) noexcept {
    if (first > last)
        return;
    // CLOSE_RANGE_CLOEXEC (Linux 5.11) keeps the report pipe usable until exec.
    if (::close_range(first, last, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    const long max = ::sysconf(_SC_OPEN_MAX);
    const unsigned end = std::min(last, max > 0 ? static_cast<unsigned>(max - 1) : 1023u);
    for (unsigned fd = first; fd <= end; ++fd)
        ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
}

} // namespace

void close_fds_on_exec() noexcept {
    cloexec_range(3, ~0U);
}

void close_fds_on_exec(const int* keep, std::size_t n) noexcept {
    unsigned next = 3;
    for (std::size_t i = 0; i < n; ++i) {
        if (keep[i] < static_cast<int>(next))
            continue; // 0..2, or a duplicate
        cloexec_range(next, static_cast<unsigned>(keep[i]) - 1);
        next = static_cast<unsigned>(keep[i]) + 1;
    }
    cloexec_range(next, ~0U);
}

void exec_or_report(const exec_plan& plan, int report_fd, int keep_fd) noexcept {
    if (plan.cwd() && ::chdir(plan.cwd()) != 0) {
        write_report(report_fd, {'E', static_cast<int>(exec_stage::chdir), errno});
        return;
    }
    close_fds_on_exec(&keep_fd, 1); // -1 keeps nothing
    ::execve(plan.path(), plan.argv(), plan.envp());
    write_report(report_fd, {'E', static_cast<int>(exec_stage::exec), errno});
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
