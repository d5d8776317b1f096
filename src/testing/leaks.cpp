#include <localvm/error.hpp>
#include <localvm/testing/leaks.hpp>

#include "sys/errno.hpp"
#include "sys/file.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>

#include <dirent.h>
#include <unistd.h>

namespace localvm::testing {
namespace fs = std::filesystem;

namespace {

struct dir_closer {
    void operator()(DIR* d) const noexcept { ::closedir(d); }
};
using dir_ptr = std::unique_ptr<DIR, dir_closer>;

dir_ptr open_dir(const char* path) {
    dir_ptr d(::opendir(path));
    if (!d)
        sys::throw_errno(errc::io_error, std::string("leak check: cannot read ") + path, errno);
    return d;
}

std::optional<long> number(std::string_view s) {
    long n = 0;
    auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (err != std::errc() || end != s.data() + s.size() || s.empty())
        return std::nullopt;
    return n;
}

std::string read_link(const std::string& path) {
    std::string buf(256, '\0');
    for (;;) {
        ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
        if (n < 0)
            return {};
        if (static_cast<std::size_t>(n) < buf.size()) {
            buf.resize(static_cast<std::size_t>(n));
            return buf;
        }
        buf.resize(buf.size() * 2);
    }
}

// Our open fds, without the one that reads the directory.
std::vector<open_fd> list_fds() {
    auto d = open_dir("/proc/self/fd");
    const int own = ::dirfd(d.get());
    std::vector<open_fd> fds;
    while (auto* e = ::readdir(d.get())) {
        auto n = number(e->d_name);
        if (!n || *n == own)
            continue;
        fds.push_back({static_cast<int>(*n), read_link(std::string("/proc/self/fd/") + e->d_name)});
    }
    std::sort(fds.begin(), fds.end(), [](auto& a, auto& b) { return a.fd < b.fd; });
    return fds;
}

// Every process /proc lists; one that ends while we read it is skipped.
std::vector<process_info> list_processes(bool with_command_lines) {
    auto d = open_dir("/proc");
    std::vector<process_info> out;
    while (auto* e = ::readdir(d.get())) {
        auto n = number(e->d_name);
        if (!n)
            continue;
        fs::path dir = fs::path("/proc") / e->d_name;
        auto stat = sys::read_file(dir / "stat");
        // "pid (comm) state ppid ...": comm may hold ')' and spaces.
        auto open = stat.find('(');
        auto close = stat.rfind(')');
        if (open == std::string::npos || close == std::string::npos || close < open)
            continue;
        process_info p;
        p.pid = static_cast<pid_t>(*n);
        p.name = stat.substr(open + 1, close - open - 1);
        std::istringstream rest(stat.substr(close + 1));
        long ppid = 0;
        if (!(rest >> p.state >> ppid))
            continue;
        p.ppid = static_cast<pid_t>(ppid);
        if (with_command_lines)
            p.command_line = sys::read_file(dir / "cmdline"); // NUL-separated until reported
        out.push_back(std::move(p));
    }
    return out;
}

std::string spaced(std::string nul_separated) {
    while (!nul_separated.empty() && nul_separated.back() == '\0')
        nul_separated.pop_back();
    std::replace(nul_separated.begin(), nul_separated.end(), '\0', ' ');
    return nul_separated;
}

// True when `args` (NUL-separated) names `dir` itself or a path below it.
bool mentions(const std::string& args, const std::string& dir) {
    for (auto pos = args.find(dir); pos != std::string::npos; pos = args.find(dir, pos + 1)) {
        auto after = pos + dir.size();
        if (after == args.size() || args[after] == '/' || args[after] == '\0' || args[after] == ',')
            return true;
    }
    return false;
}

std::string shortened(const std::string& s, std::size_t limit = 300) {
    return s.size() <= limit ? s : s.substr(0, limit) + "...";
}

} // namespace

resource_snapshot resource_snapshot::take() {
    resource_snapshot s;
    s.fds = list_fds();
    const pid_t self = ::getpid();
    for (auto& p : list_processes(true))
        if (p.ppid == self) {
            p.command_line = spaced(std::move(p.command_line));
            s.children.push_back(std::move(p));
        }
    return s;
}

bool leak_report::clean() const noexcept {
    return fds.empty() && children.empty() && processes.empty() && sockets.empty();
}

std::string leak_report::describe() const {
    std::string out;
    auto line = [&](const std::string& l) {
        out += l + "\n";
    };
    for (const auto& f : fds)
        line("fd " + std::to_string(f.fd) + " -> " + f.target + " is still open");
    for (const auto& c : children) {
        if (c.state == 'Z')
            line("zombie child " + std::to_string(c.pid) + " (" + c.name + ") was never reaped");
        else
            line("child " + std::to_string(c.pid) + " (" + c.name +
                 ") still runs: " + shortened(c.command_line));
    }
    for (const auto& p : processes)
        line("process " + std::to_string(p.pid) + " (" + p.name +
             ") still runs: " + shortened(p.command_line));
    for (const auto& s : sockets)
        line("socket " + s.string() + " is left behind");
    return out;
}

leak_report find_leaks(const resource_snapshot& before, const leak_check_options& opts) {
    leak_report r;
    for (auto& f : list_fds()) {
        auto it = std::find_if(before.fds.begin(), before.fds.end(),
                               [&](const open_fd& b) { return b.fd == f.fd; });
        if (it == before.fds.end() || it->target != f.target)
            r.fds.push_back(std::move(f));
    }

    std::vector<std::string> dirs;
    for (const auto& d : opts.directories) {
        auto s = fs::absolute(d).lexically_normal().string();
        while (s.size() > 1 && s.back() == '/')
            s.pop_back();
        dirs.push_back(std::move(s));
    }
    const pid_t self = ::getpid();
    for (auto& p : list_processes(true)) {
        if (p.pid == self)
            continue;
        if (p.ppid == self) {
            bool known = std::any_of(
                before.children.begin(), before.children.end(),
                [&](const process_info& b) { return b.pid == p.pid && b.name == p.name; });
            if (!known) {
                p.command_line = spaced(std::move(p.command_line));
                r.children.push_back(std::move(p));
            }
            continue;
        }
        bool named = std::any_of(dirs.begin(), dirs.end(),
                                 [&](const std::string& d) { return mentions(p.command_line, d); });
        if (named) {
            p.command_line = spaced(std::move(p.command_line));
            r.processes.push_back(std::move(p));
        }
    }

    for (const auto& d : opts.directories) {
        std::error_code ec;
        fs::recursive_directory_iterator it(d, fs::directory_options::skip_permission_denied, ec),
            end;
        for (; !ec && it != end; it.increment(ec)) {
            std::error_code sec;
            if (it->is_socket(sec))
                r.sockets.push_back(it->path());
        }
    }
    std::sort(r.sockets.begin(), r.sockets.end());
    return r;
}

} // namespace localvm::testing
