// The processes of a detached launch (see supervisor.hpp). Why a
// supervisor at all: it is the program's parent, so it alone can record how
// the program ended (its exit status is lost to anyone else), and it holds
// one end of a socket pair whose other end is the starter's
// `detached_process`: until a commit byte comes through it, EOF (the handle
// dropped, or the starter dead of anything, even SIGKILL) makes it kill the
// program. A socket, not a pipe: the starter's commit after the supervisor
// is gone must fail with EPIPE, not SIGPIPE.
#include "supervisor.hpp"

#include "console/drain_child.hpp"
#include "exec_child.hpp"
#include "sys/fd.hpp"
#include "sys/pidfd_calls.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio> // rename
#include <iterator>

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace localvm::process::detail {

namespace {

// Async-signal-safe decimal of `n` at `buf`: no printf, no allocation.
std::size_t format_decimal(char* buf, int n) {
    std::size_t len = 0;
    char digits[12];
    std::size_t d = 0;
    unsigned v = n < 0 ? static_cast<unsigned>(-static_cast<long>(n)) : static_cast<unsigned>(n);
    do {
        digits[d++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (n < 0)
        buf[len++] = '-';
    while (d > 0)
        buf[len++] = digits[--d];
    return len;
}

// Async-signal-safe "exited 3\n".
std::size_t format_status(char* buf, const char* word, int n) {
    std::size_t len = 0;
    for (const char* w = word; *w; ++w)
        buf[len++] = *w;
    buf[len++] = ' ';
    len += format_decimal(buf + len, n);
    buf[len++] = '\n';
    return len;
}

int open_output(const char* path) {
    if (!path)
        return ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    return ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

// The lock file, opened without O_CLOEXEC, write-locked and holding our
// pid: the program keeps it across exec. -1 (errno set) on failure.
int take_lock_file(const char* path) {
    int fd = ::open(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (::fcntl(fd, F_SETLK, &fl) != 0 || ::ftruncate(fd, 0) != 0) {
        int e = errno;
        ::close(fd);
        errno = e;
        return -1;
    }
    char buf[16];
    std::size_t len = format_decimal(buf, static_cast<int>(::getpid()));
    buf[len++] = '\n';
    sys::write_all(fd, buf, len);
    return fd;
}

} // namespace

void exec_program(const supervised_program& p, int report_fd, int stdin_fd,
                  inherited_signals sigs) noexcept {
    int in = stdin_fd >= 0 ? stdin_fd : ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = open_output(p.stdout_path);
    if (out < 0) {
        write_report(report_fd, {'E', static_cast<int>(exec_stage::open_stdout), errno});
        ::_exit(127);
    }
    int err = open_output(p.stderr_path);
    if (err < 0) {
        write_report(report_fd, {'E', static_cast<int>(exec_stage::open_stderr), errno});
        ::_exit(127);
    }
    int fds[3] = {in, out, err};
    if (in < 0 || !install_stdio(fds)) {
        write_report(report_fd, {'E', static_cast<int>(exec_stage::stdio), errno});
        ::_exit(127);
    }
    int lock_fd = -1;
    if (p.lock_path) {
        lock_fd = take_lock_file(p.lock_path);
        if (lock_fd < 0) {
            write_report(report_fd, {'E', static_cast<int>(exec_stage::lock), errno});
            ::_exit(127);
        }
    }
    if (sigs == inherited_signals::only_sigpipe)
        ::signal(SIGPIPE, SIG_DFL); // one call, not one per signal
    else
        reset_signals();
    exec_or_report(p.path, p.argv, p.envp, p.cwd, report_fd, lock_fd);
    ::_exit(127);
}

namespace {

// Closes every fd >= 3 but those in `keep` (-1 entries ignored).
// Async-signal-safe.
void close_all_but(int (&keep)[5]) {
    std::sort(std::begin(keep), std::end(keep));
    int from = 3;
    for (int k : keep) {
        if (k < from)
            continue;
        if (k > from)
            ::close_range(static_cast<unsigned>(from), static_cast<unsigned>(k) - 1, 0);
        from = k + 1;
    }
    ::close_range(static_cast<unsigned>(from), ~0U, 0);
}

// True once the program has ended (not reaped: WNOWAIT).
bool ended(pid_t prog) {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(prog), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == prog;
}

// Watches the program until it ends: reads the starter's commit when it
// comes (the channel's end without one: the program is killed, and true
// is returned) and copies its console output meanwhile. One poll loop;
// the program's end is its pidfd turning readable.
bool watch(pid_t prog, int commit_fd, console::detail::drain_state* drain) noexcept {
    auto prog_fd = sys::pidfd_open(prog);
    bool abandoned = false;
    for (;;) {
        pollfd fds[3];
        nfds_t n = 0;
        int at_commit = -1;
        int at_drain = -1;
        if (prog_fd)
            fds[n++] = {prog_fd.get(), POLLIN, 0};
        if (commit_fd >= 0) {
            at_commit = static_cast<int>(n);
            fds[n++] = {commit_fd, POLLIN, 0};
        }
        if (drain) {
            at_drain = static_cast<int>(n);
            fds[n++] = {drain->in, POLLIN, 0};
        }
        // Without a pidfd (Linux < 5.3): a look at the program every 100 ms.
        // poll fails only with EINTR or ENOMEM: both pass; try again.
        if (::poll(fds, n, prog_fd ? -1 : 100) < 0)
            continue;
        if (at_drain >= 0 && fds[at_drain].revents != 0)
            console::detail::drain_once(*drain);
        if (at_commit >= 0 && fds[at_commit].revents != 0) {
            char c = 0;
            ssize_t got = ::read(commit_fd, &c, 1);
            if (got < 0 && errno == EINTR)
                continue;
            ::close(commit_fd);
            commit_fd = -1;
            if (!(got == 1 && c == 'C')) {
                abandoned = true;
                ::kill(prog, SIGKILL);
            }
        }
        if (prog_fd ? (fds[0].revents & POLLIN) != 0 : ended(prog))
            break;
    }
    if (commit_fd >= 0)
        ::close(commit_fd); // the program ended on its own: record that, kill nothing
    return abandoned;
}

} // namespace

void supervise(const supervised_program& p, int report_fd, int commit_fd) noexcept {
    // Hold nothing of our starter's open: its pipes would never see EOF.
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    int fds[3] = {null_fd, null_fd, null_fd};
    if (null_fd >= 0)
        install_stdio(fds);
    int keep[5] = {report_fd, commit_fd, -1, -1, -1};
    if (p.drain) {
        keep[2] = p.drain->in;
        keep[3] = p.drain->hold;
        keep[4] = p.drain->log_fd; // ours: the program's exec closes them (exec_or_report)
        console::detail::drain_begin(*p.drain);
    }
    close_all_but(keep);
    reset_signals();
    // A starter that gave up before reading our report has closed its
    // pipe: the write fails with EPIPE instead of ending us (SIGPIPE) with
    // the program left unwatched. The program gets the default back.
    ::signal(SIGPIPE, SIG_IGN);

    // The program reports exec failures to us first, so that we write no
    // status file for a program that never ran.
    int q[2];
    if (::pipe2(q, O_CLOEXEC) != 0) {
        write_report(report_fd, {'E', static_cast<int>(exec_stage::fork), errno});
        ::_exit(1);
    }
    // With hold_stdin, the program reads a pipe whose write end we keep
    // (and never write to) until it ends: it never sees end of file.
    int in[2] = {-1, -1};
    if (p.hold_stdin && ::pipe2(in, O_CLOEXEC) != 0) {
        write_report(report_fd, {'E', static_cast<int>(exec_stage::stdio), errno});
        ::_exit(1);
    }
    // vfork: the child borrows our memory until its exec (or _exit), and we
    // wait until then. A fork would copy our page tables for the child to
    // drop them at once, and leave our pages copy-on-write: about 0.1 ms of
    // CPU per start, a few percent of a stand-in's. The child only closes
    // its own descriptors (its table is a copy), sets up stdio and the lock,
    // and execs: async-signal-safe calls on memory prepared before.
    pid_t prog = ::vfork();
    if (prog < 0) {
        write_report(report_fd, {'E', static_cast<int>(exec_stage::fork), errno});
        ::_exit(1);
    }
    if (prog == 0) {
        ::close(q[0]);
        ::close(report_fd);
        ::close(commit_fd);
        if (in[1] >= 0)
            ::close(in[1]);
        exec_program(p, q[1], in[0], inherited_signals::only_sigpipe);
    }
    ::close(q[1]);
    if (in[0] >= 0)
        ::close(in[0]);
    // The supervisor may live long: keep no directory busy (its paths are
    // absolute; the program, started already, kept our working directory).
    if (::chdir("/") != 0) {
    }
    exec_report r{};
    const std::size_t have = sys::read_full(q[0], &r, sizeof r);
    ::close(q[0]);
    int st = 0;
    if (have == sizeof r && r.tag == 'E') {
        if (p.drain)
            console::detail::drain_finish(*p.drain); // its FIFO goes: no writer will come
        write_report(report_fd, r);
        while (::waitpid(prog, &st, 0) < 0 && errno == EINTR) {
        }
        ::_exit(1);
    }
    write_report(report_fd, {'P', 0, prog});
    ::close(report_fd); // our starter sees EOF now

    // The program is our unreaped child: its pid cannot be reused yet.
    const bool abandoned = watch(prog, commit_fd, p.drain);
    while (::waitpid(prog, &st, 0) < 0) {
        if (errno != EINTR)
            ::_exit(1);
    }
    if (in[1] >= 0)
        ::close(in[1]);
    // What the program wrote last is in the log before its end is recorded.
    if (p.drain)
        console::detail::drain_finish(*p.drain);
    char buf[48];
    std::size_t len = WIFSIGNALED(st) ? format_status(buf, "signaled", WTERMSIG(st))
                                      : format_status(buf, "exited", WEXITSTATUS(st));
    if (abandoned) {
        const char note[] = " abandoned\n";
        --len; // before the '\n'
        for (const char* c = note; *c; ++c)
            buf[len++] = *c;
    }
    int fd = ::open(p.status_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        sys::write_all(fd, buf, len);
        ::fsync(fd);
        ::close(fd);
        ::rename(p.status_tmp, p.status_path);
    }
    ::_exit(0);
}

} // namespace localvm::process::detail
