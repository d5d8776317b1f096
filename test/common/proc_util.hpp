// Test and benchmark helpers that look at /proc: a process's files read
// safely, every pid, our zombie children, open fds and what they refer to,
// the session and parent of a process, processes by their arguments, the
// machine's busy time.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

namespace proc_util {

// The whole of /proc/<pid>/<name>; empty when it cannot be read (the
// process is gone). read(2), not a stream: libstdc++'s filebuf throws when
// the process goes between open and read (ESRCH).
inline std::string proc_file(pid_t pid, const char* name) {
    const std::string path = "/proc/" + std::to_string(pid) + "/" + name;
    std::string text;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
        text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return text;
}

// Every process's pid, in /proc's order (those that go meanwhile may be
// among them).
inline std::vector<pid_t> pids() {
    std::vector<pid_t> found;
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end;
         it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos)
            found.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return found;
}

// The lines of `text` that start with one of `keys` (as "SigBlk:" in
// /proc/<pid>/status), each with its newline, in their order in `text`.
inline std::string lines_starting(const std::string& text,
                                  std::initializer_list<std::string_view> keys) {
    std::istringstream in(text);
    std::string out;
    for (std::string line; std::getline(in, line);)
        if (std::any_of(keys.begin(), keys.end(), [&](auto k) { return line.starts_with(k); }))
            out += line + "\n";
    return out;
}

struct stat_fields {
    char state = '?';
    pid_t ppid = 0;
    pid_t session = 0;
};

// Fields of /proc/<pid>/stat; nullopt when the process is gone.
inline std::optional<stat_fields> read_stat(pid_t pid) {
    const std::string text = proc_file(pid, "stat");
    auto close = text.rfind(')');
    if (close == std::string::npos)
        return std::nullopt;
    std::istringstream rest(text.substr(close + 2));
    stat_fields f;
    pid_t pgrp = 0;
    rest >> f.state >> f.ppid >> pgrp >> f.session;
    return f;
}

// Our children in state Z (zombies we failed to reap).
inline std::vector<pid_t> zombie_children() {
    std::vector<pid_t> found;
    for (pid_t pid : pids()) {
        auto f = read_stat(pid);
        if (f && f->ppid == ::getpid() && f->state == 'Z')
            found.push_back(pid);
    }
    return found;
}

// The live processes whose command line holds the arguments `args` one
// after the other (as `--status`, `/path`), in /proc's order.
inline std::vector<pid_t> processes_with_args(const std::vector<std::string>& args) {
    std::string wanted;
    for (const auto& a : args)
        wanted += a + '\0';
    std::vector<pid_t> found;
    for (pid_t pid : pids()) {
        const std::string cmdline = proc_file(pid, "cmdline");
        // Whole arguments only: the match starts the line or follows a NUL.
        for (auto at = cmdline.find(wanted); at != std::string::npos;
             at = cmdline.find(wanted, at + 1))
            if (at == 0 || cmdline[at - 1] == '\0') {
                found.push_back(pid);
                break;
            }
    }
    return found;
}

// The fd numbers open in process `pid`.
inline std::vector<int> open_fds(pid_t pid) {
    std::vector<int> fds;
    for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
        fds.push_back(std::stoi(e.path().filename().string()));
    std::sort(fds.begin(), fds.end());
    return fds;
}

// What each fd open in process `pid` refers to, by fd number, as /proc
// shows it ("/dev/null", "pipe:[123]", "anon_inode:inotify"); empty when
// the process is gone. An fd closed while this reads is left out (a
// program's loader opens and closes files right after its exec).
inline std::map<int, std::string> fd_targets(pid_t pid) {
    std::map<int, std::string> found;
    std::error_code ec;
    for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
         !ec && it != end; it.increment(ec)) {
        std::error_code lec;
        auto target = std::filesystem::read_symlink(it->path(), lec);
        if (!lec)
            found.emplace(std::stoi(it->path().filename().string()), target.string());
    }
    return found;
}

// CPU time (ms) the whole machine has spent busy since boot (/proc/stat:
// user, nice, system, irq, softirq), in clock ticks (10 ms at 100 Hz).
// Counts everything that ran, exited processes too, but also whatever else
// runs on the machine: a figure for a quiet one.
inline double machine_busy_ms() {
    std::ifstream f("/proc/stat");
    std::string cpu;
    long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
    f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq;
    return static_cast<double>(user + nice + system + irq + softirq) * 1e3 /
           static_cast<double>(::sysconf(_SC_CLK_TCK));
}

inline std::size_t count_own_fds() {
    // The directory iterator's own fd is counted both times: it cancels out.
    return open_fds(::getpid()).size();
}

} // namespace proc_util
