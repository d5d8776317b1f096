// localvm-supervise: the supervisor of a detached process (see
// include/localvm/process/detached.hpp), a program of its own so that it
// holds none of its starter's memory. localvm's spawn_detached runs it; it
// is not meant to be run by hand.
//
//   localvm-supervise --status FILE [--stdout FILE] [--stderr FILE]
//       [--lock FILE] [--cwd DIR] [--hold-stdin]
//       [--drain-log FILE --drain-rotated FILE --drain-fifo FIFO
//        --drain-limit BYTES] -- PATH ARGV0 [ARG...]
//
// runs PATH with argv ARGV0 ARG... and this program's own environment, and
// does what src/process/supervisor.hpp says. Descriptors on entry: 3 is the
// report pipe (records the starter reads until EOF), 4 the commit channel
// (one end of a socket pair); with --drain-log, 5 the console FIFO's read
// end (non-blocking), 6 a write end of it to hold, 7 the log (see
// src/console/drain_child.hpp); 0..2 are /dev/null. It is started as its
// starter's child (posix_spawn) and first forks itself into the background:
// the process the starter reaps exits 0 at once. Exit status 2 for a bad
// command line (nothing started).
//
//   localvm-supervise --detach [--stdout FILE] [--stderr FILE] [--lock FILE]
//       [--cwd DIR] -- PATH ARGV0 [ARG...]
//
// puts the program in the background without a supervisor (spawn_detached
// without an exit status file): forks itself away as above, reports its
// own pid ('P') on fd 3, and becomes the program (exec; a failure is an 'E'
// report). Only fd 3 is open on entry beside 0..2.
#include "supervisor.hpp"

#include "console/drain_child.hpp"
#include "exec_child.hpp"
#include "sys/spawn_helper.hpp"

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace {

constexpr int report_fd = 3;
constexpr int commit_fd = 4;

int usage(const char* why) {
    std::fprintf(stderr,
                 "localvm-supervise: %s\n"
                 "usage: localvm-supervise --status FILE [--stdout FILE] [--stderr FILE] "
                 "[--lock FILE] [--cwd DIR] [--hold-stdin] [--drain-log FILE --drain-rotated "
                 "FILE --drain-fifo FIFO --drain-limit BYTES] -- PATH ARGV0 [ARG...]\n"
                 "       localvm-supervise --detach [--stdout FILE] [--stderr FILE] "
                 "[--lock FILE] [--cwd DIR] -- PATH ARGV0 [ARG...]\n"
                 "(run by liblocalvm, with its report pipe on fd 3, commit channel on fd 4, "
                 "and with --drain-log the console FIFO's two ends and the log on fds 5 to 7)\n",
                 why);
    return 2;
}

// A decimal in [1, max], or false.
bool positive(const char* text, unsigned long long& out) {
    if (!*text || *text == '-')
        return false;
    char* end = nullptr;
    errno = 0;
    out = std::strtoull(text, &end, 10);
    return errno == 0 && *end == '\0' && out > 0;
}

bool open_fds(int from, int to) {
    for (int fd = from; fd <= to; ++fd)
        if (::fcntl(fd, F_GETFD) < 0)
            return false;
    return true;
}

} // namespace

int main(int argc, char** argv) {
    localvm::process::detail::supervised_program p;
    p.envp = environ;
    static localvm::console::detail::drain_state drain;
    bool have_limit = false;
    bool detach = false;
    int i = 1;
    for (; i < argc; ++i) {
        const char* a = argv[i];
        if (std::strcmp(a, "--") == 0) {
            ++i;
            break;
        }
        if (std::strcmp(a, "--hold-stdin") == 0) {
            p.hold_stdin = true;
            continue;
        }
        if (std::strcmp(a, "--detach") == 0) {
            detach = true;
            continue;
        }
        if (i + 1 >= argc)
            return usage("an option without its value");
        const char* v = argv[++i];
        if (std::strcmp(a, "--status") == 0)
            p.status_path = v;
        else if (std::strcmp(a, "--stdout") == 0)
            p.stdout_path = v;
        else if (std::strcmp(a, "--stderr") == 0)
            p.stderr_path = v;
        else if (std::strcmp(a, "--lock") == 0)
            p.lock_path = v;
        else if (std::strcmp(a, "--cwd") == 0)
            p.cwd = v;
        else if (std::strcmp(a, "--drain-log") == 0)
            drain.plan.log = v;
        else if (std::strcmp(a, "--drain-rotated") == 0)
            drain.plan.rotated = v;
        else if (std::strcmp(a, "--drain-fifo") == 0)
            drain.plan.fifo = v;
        else if (std::strcmp(a, "--drain-limit") == 0) {
            unsigned long long n = 0;
            if (!positive(v, n))
                return usage("--drain-limit: a number of bytes, at least 1");
            drain.plan.limit = n;
            have_limit = true;
        } else
            return usage("unknown option");
    }
    const bool drains = drain.plan.log || drain.plan.rotated || drain.plan.fifo || have_limit;
    if (detach) {
        if (p.status_path || p.hold_stdin || drains)
            return usage("--detach takes no --status, --hold-stdin or --drain-*: nothing "
                         "supervises the program");
        if (argc - i < 2)
            return usage("needs, after --, the program's path and argv");
        if (!open_fds(report_fd, report_fd))
            return usage("fd 3 is not open");
    } else {
        if (!p.status_path || argc - i < 2)
            return usage("needs --status and, after --, the program's path and argv");
        if (drains && (!drain.plan.log || !drain.plan.rotated || !drain.plan.fifo || !have_limit))
            return usage("--drain-log needs --drain-rotated, --drain-fifo and --drain-limit");
        if (!open_fds(report_fd, commit_fd))
            return usage("fds 3 and 4 are not open");
        if (drains) {
            if (!open_fds(5, 7))
                return usage("--drain-log: fds 5 to 7 are not open");
            drain.in = 5;
            drain.hold = 6;
            drain.log_fd = 7;
            p.drain = &drain;
        }
        // No std::string: without libstdc++ the helper maps less and starts sooner.
        static char tmp[PATH_MAX + 8];
        const std::size_t len = std::strlen(p.status_path);
        if (len + sizeof ".tmp" > sizeof tmp)
            return usage("the --status path is too long");
        std::memcpy(tmp, p.status_path, len);
        std::memcpy(tmp + len, ".tmp", sizeof ".tmp");
        p.status_tmp = tmp;
    }
    p.path = argv[i];
    p.argv = argv + i + 1;
    using localvm::process::detail::exec_stage;
    using localvm::process::detail::write_report;
    if (!localvm::sys::leave_starter()) {
        write_report(report_fd, {'E', static_cast<int>(exec_stage::fork), errno});
        return 1;
    }
    if (detach) {
        write_report(report_fd, {'P', 0, static_cast<int>(::getpid())});
        localvm::process::detail::exec_program(p, report_fd); // execs, or reports and exits
    }
    // ps shows the name it had as a fork of its starter.
    ::prctl(PR_SET_NAME, "localvm-superv", 0, 0, 0);
    localvm::process::detail::supervise(p, report_fd, commit_fd);
}
