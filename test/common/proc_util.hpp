// Test and benchmark helpers that look at /proc: our zombie children, our
// open fds, the session and parent of a process, processes by their
// arguments, the machine's busy time.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

namespace proc_util {

struct stat_fields {
    char state = '?';
    pid_t ppid = 0;
    pid_t session = 0;
};

// Fields of /proc/<pid>/stat; nullopt when the process is gone.
inline std::optional<stat_fields> read_stat(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(in, text))
        return std::nullopt;
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
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        auto f = read_stat(static_cast<pid_t>(std::stol(name)));
        if (f && f->ppid == ::getpid() && f->state == 'Z')
            found.push_back(static_cast<pid_t>(std::stol(name)));
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
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        // read(2), not a stream: libstdc++'s filebuf throws when the
        // process goes between open and read (ESRCH).
        std::string cmdline;
        const int fd = ::open((e.path() / "cmdline").c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        char buf[4096];
        for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
            cmdline.append(buf, static_cast<std::size_t>(n));
        ::close(fd);
        // Whole arguments only: the match starts the line or follows a NUL.
        for (auto at = cmdline.find(wanted); at != std::string::npos;
             at = cmdline.find(wanted, at + 1))
            if (at == 0 || cmdline[at - 1] == '\0') {
                found.push_back(static_cast<pid_t>(std::stol(name)));
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
