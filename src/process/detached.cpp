// Detached processes: fork -> setsid -> fork, so that the program is
// re-parented away from us at once (never our zombie) and survives our exit.
// With an exit status file there is one more level: the process we fork
// exits at once, its child is the supervisor (not our child either, so its
// exit leaves no zombie here) and the supervisor's child is the program.
// Everything between fork and exec is async-signal-safe: paths, argv and
// envp are prepared before the first fork.
//
// The supervisor also holds one end of a socket pair whose other end is the
// starter's `detached_process`: until a commit byte comes through it, EOF
// (the handle dropped, or the starter dead of anything, even SIGKILL) makes
// the supervisor kill the program. A socket, not a pipe: the starter's
// commit after the supervisor is gone must fail with EPIPE, not SIGPIPE.
#include "exec.hpp"
#include "detail/race.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include "sys/pidfd.hpp"

#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace localvm::process {

namespace asio = boost::asio;
using detail::exec_report;
using detail::exec_stage;

namespace {

struct prepared {
    std::string stdout_path; // empty: /dev/null
    std::string stderr_path;
    std::string status_path; // empty: no supervisor
    std::string status_tmp;
    std::string lock_path;   // empty: none
    bool hold_stdin = false;
};

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

int open_output(const std::string& path) {
    if (path.empty())
        return ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

// The lock file, opened without O_CLOEXEC, write-locked and holding our
// pid: the program keeps it across exec. -1 (errno set) on failure.
int take_lock_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
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

// The program itself: stdio, then exec. `stdin_fd` < 0: /dev/null. Never returns.
[[noreturn]] void exec_program(const detail::exec_plan& plan, const prepared& p, int report_fd,
                               int stdin_fd = -1) {
    int in = stdin_fd >= 0 ? stdin_fd : ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = open_output(p.stdout_path);
    if (out < 0) {
        detail::write_report(report_fd, {'E', static_cast<int>(exec_stage::open_stdout), errno});
        ::_exit(127);
    }
    int err = open_output(p.stderr_path);
    if (err < 0) {
        detail::write_report(report_fd, {'E', static_cast<int>(exec_stage::open_stderr), errno});
        ::_exit(127);
    }
    int fds[3] = {in, out, err};
    if (in < 0 || !detail::install_stdio(fds)) {
        detail::write_report(report_fd, {'E', static_cast<int>(exec_stage::stdio), errno});
        ::_exit(127);
    }
    int lock_fd = -1;
    if (!p.lock_path.empty()) {
        lock_fd = take_lock_file(p.lock_path);
        if (lock_fd < 0) {
            detail::write_report(report_fd, {'E', static_cast<int>(exec_stage::lock), errno});
            ::_exit(127);
        }
    }
    detail::reset_signals();
    detail::exec_or_report(plan, report_fd, lock_fd);
    ::_exit(127);
}

// Closes every fd >= 3 but `a` and `b`. Async-signal-safe.
void close_all_but(int a, int b) {
    unsigned lo = static_cast<unsigned>(std::min(a, b));
    unsigned hi = static_cast<unsigned>(std::max(a, b));
    if (lo > 3)
        ::close_range(3, lo - 1, 0);
    if (hi > lo + 1)
        ::close_range(lo + 1, hi - 1, 0);
    ::close_range(hi + 1, ~0U, 0);
}

// Waits for the starter's commit while the program runs. Returns true when
// the program must be killed: the channel ended (EOF or error) first.
bool await_commit(pid_t prog, int commit_fd) {
    auto prog_fd = sys::pidfd_open(prog);
    bool abandon = false;
    for (;;) {
        pollfd fds[2] = {{commit_fd, POLLIN, 0}, {prog_fd.get(), POLLIN, 0}};
        int rc = ::poll(fds, prog_fd ? 2 : 1, -1);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            break; // cannot watch: let the program be, as before commit channels
        }
        if (prog_fd && (fds[1].revents & POLLIN))
            break; // the program ended on its own: record that, kill nothing
        if (fds[0].revents != 0) {
            char c = 0;
            ssize_t n = ::read(commit_fd, &c, 1);
            if (n < 0 && errno == EINTR)
                continue;
            abandon = !(n == 1 && c == 'C');
            break;
        }
    }
    return abandon;
}

// The supervisor: forks the program, tells our starter its pid (or why it
// could not exec), waits for the commit, then for the program, and records
// how it ended. Never returns.
[[noreturn]] void supervise(const detail::exec_plan& plan, const prepared& p, int report_fd,
                            int commit_fd) {
    ::prctl(PR_SET_NAME, "localvm-superv", 0, 0, 0);
    // Hold nothing of our starter's open: its pipes would never see EOF.
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    int fds[3] = {null_fd, null_fd, null_fd};
    if (null_fd >= 0)
        detail::install_stdio(fds);
    close_all_but(report_fd, commit_fd);
    detail::reset_signals();

    // The program reports exec failures to us first, so that we write no
    // status file for a program that never ran.
    int q[2];
    if (::pipe2(q, O_CLOEXEC) != 0) {
        detail::write_report(report_fd, {'E', static_cast<int>(exec_stage::fork), errno});
        ::_exit(1);
    }
    // With hold_stdin, the program reads a pipe whose write end we keep
    // (and never write to) until it ends: it never sees end of file.
    int in[2] = {-1, -1};
    if (p.hold_stdin && ::pipe2(in, O_CLOEXEC) != 0) {
        detail::write_report(report_fd, {'E', static_cast<int>(exec_stage::stdio), errno});
        ::_exit(1);
    }
    pid_t prog = ::fork();
    if (prog < 0) {
        detail::write_report(report_fd, {'E', static_cast<int>(exec_stage::fork), errno});
        ::_exit(1);
    }
    if (prog == 0) {
        ::close(q[0]);
        ::close(report_fd);
        ::close(commit_fd);
        if (in[1] >= 0)
            ::close(in[1]);
        exec_program(plan, p, q[1], in[0]);
    }
    ::close(q[1]);
    if (in[0] >= 0)
        ::close(in[0]);
    // The supervisor may live long: keep no directory busy (its paths are
    // absolute; the program, forked already, kept our working directory).
    if (::chdir("/") != 0) {
    }
    exec_report r{};
    const std::size_t have = sys::read_full(q[0], &r, sizeof r);
    ::close(q[0]);
    int st = 0;
    if (have == sizeof r && r.tag == 'E') {
        detail::write_report(report_fd, r);
        while (::waitpid(prog, &st, 0) < 0 && errno == EINTR) {
        }
        ::_exit(1);
    }
    detail::write_report(report_fd, {'P', 0, prog});
    ::close(report_fd); // our starter sees EOF now

    // The program is our unreaped child: its pid cannot be reused yet.
    bool abandoned = await_commit(prog, commit_fd);
    ::close(commit_fd);
    if (abandoned)
        ::kill(prog, SIGKILL);
    while (::waitpid(prog, &st, 0) < 0) {
        if (errno != EINTR)
            ::_exit(1);
    }
    if (in[1] >= 0)
        ::close(in[1]);
    char buf[48];
    std::size_t len = WIFSIGNALED(st) ? format_status(buf, "signaled", WTERMSIG(st))
                                      : format_status(buf, "exited", WEXITSTATUS(st));
    if (abandoned) {
        const char note[] = " abandoned\n";
        --len; // before the '\n'
        for (const char* c = note; *c; ++c)
            buf[len++] = *c;
    }
    int fd = ::open(p.status_tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        sys::write_all(fd, buf, len);
        ::fsync(fd);
        ::close(fd);
        ::rename(p.status_tmp.c_str(), p.status_path.c_str());
    }
    ::_exit(0);
}

// A pipe or socket pair: two owned ends.
struct fd_pair {
    sys::unique_fd fd[2];
    void take(const int raw[2]) {
        fd[0].reset(raw[0]);
        fd[1].reset(raw[1]);
    }
};

} // namespace

detached_process::detached_process(detached_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1))
    , channel_(std::exchange(other.channel_, -1)) {}

detached_process& detached_process::operator=(detached_process&& other) noexcept {
    if (this != &other) {
        abandon();
        pid_ = std::exchange(other.pid_, -1);
        channel_ = std::exchange(other.channel_, -1);
    }
    return *this;
}

detached_process::~detached_process() { abandon(); }

bool detached_process::commit() noexcept {
    if (channel_ < 0)
        return true;
    ssize_t n;
    do
        n = ::send(channel_, "C", 1, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n == 1) {
        // The supervisor closes its end once it has read the byte: wait for
        // that, so that the commit has taken effect when we return.
        pollfd pfd{channel_, POLLIN, 0};
        int rc;
        do
            rc = ::poll(&pfd, 1, 1000);
        while (rc < 0 && errno == EINTR);
    }
    ::close(std::exchange(channel_, -1));
    return n == 1;
}

asio::awaitable<bool> detached_process::hand_over() {
    if (channel_ < 0)
        co_return true;
    ssize_t n;
    do
        n = ::send(channel_, "C", 1, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n == 1) {
        // As commit(): wait until the supervisor closes its end, having read
        // the byte, but on the io_context. A dup: the channel stays ours.
        int fd = ::fcntl(channel_, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) {
            asio::posix::stream_descriptor sd(co_await asio::this_coro::executor, fd);
            asio::steady_timer t(sd.get_executor(), std::chrono::seconds(1));
            boost::system::error_code wec, tec;
            try {
                co_await localvm::detail::race(
                    sd.async_wait(asio::posix::descriptor_base::wait_read,
                                  asio::redirect_error(asio::use_awaitable, wec)),
                    t.async_wait(asio::redirect_error(asio::use_awaitable, tec)));
            } catch (...) {
                // Cancelled: the byte is sent, the commit stands.
                ::close(std::exchange(channel_, -1));
                throw;
            }
        }
    }
    ::close(std::exchange(channel_, -1));
    co_return n == 1;
}

void detached_process::abandon() noexcept {
    if (channel_ >= 0)
        ::close(std::exchange(channel_, -1)); // EOF: the supervisor kills the program
}

// Makes handles (the constructor is private: only launches make them).
struct detached_access {
    static detached_process make(pid_t pid, int channel) { return detached_process(pid, channel); }
};

namespace {

// A launch whose first fork is done and whose reports are still to come.
// Owns the report pipe's read end, our end of the commit channel, and the
// intermediate child (reaped on destruction: it exits at once).
struct launch {
    detail::exec_plan plan;
    prepared p;
    int report_fd = -1;
    int commit_fd = -1;
    pid_t first = -1;

    explicit launch(const detached_options& opts)
        : plan(opts.argv, opts.environment, {}, opts.working_directory) {}
    launch(const launch&) = delete;
    launch& operator=(const launch&) = delete;
    ~launch() {
        if (report_fd >= 0)
            ::close(report_fd);
        if (commit_fd >= 0)
            ::close(commit_fd); // EOF: the supervisor kills the program
        reap();
    }
    void reap() {
        int st = 0;
        while (first > 0 && ::waitpid(first, &st, 0) < 0 && errno == EINTR) {
        }
        first = -1;
    }
};

// Everything up to the first fork (synchronous: a fork takes a moment).
std::unique_ptr<launch> begin_launch(const detached_options& opts) {
    auto l = std::make_unique<launch>(opts);
    prepared& p = l->p;
    // Relative output paths mean relative to our directory, not the program's.
    auto absolute = [](const std::filesystem::path& f) {
        return f.empty() ? std::string() : std::filesystem::absolute(f).string();
    };
    p.stdout_path = absolute(opts.stdout_file);
    p.stderr_path = absolute(opts.stderr_file);
    p.status_path = absolute(opts.exit_status_file);
    p.lock_path = absolute(opts.lock_file);
    p.hold_stdin = opts.hold_stdin;
    if (p.hold_stdin && p.status_path.empty())
        throw_error(errc::invalid_argument,
                    "detached_options::hold_stdin needs exit_status_file (a supervisor), for " +
                        l->plan.command());
    if (!p.status_path.empty()) {
        p.status_tmp = p.status_path + ".tmp";
        // A status left by an earlier run must not describe this one.
        if (::unlink(p.status_path.c_str()) != 0 && errno != ENOENT)
            sys::throw_errno(errc::io_error,
                             "cannot remove the old exit status file " + p.status_path, errno);
    }

    fd_pair report;
    int raw[2];
    if (::pipe2(raw, O_CLOEXEC) != 0)
        sys::throw_errno(errc::process_failed, "cannot create a pipe for " + l->plan.command(), errno);
    report.take(raw);
    const int wfd = report.fd[1].get();
    fd_pair commit; // [0] ours, [1] the supervisor's
    if (!p.status_path.empty()) {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, raw) != 0)
            sys::throw_errno(errc::process_failed,
                             "cannot create a commit channel for " + l->plan.command(), errno);
        commit.take(raw);
    }

    pid_t first = ::fork();
    if (first < 0)
        sys::throw_errno(errc::process_failed, "cannot fork for " + l->plan.command(), errno);
    if (first == 0) {
        // Only async-signal-safe calls from here on.
        report.fd[0].reset();
        commit.fd[0].reset();
        ::setsid();
        pid_t next = ::fork();
        if (next < 0) {
            detail::write_report(wfd, {'E', static_cast<int>(exec_stage::fork), errno});
            ::_exit(1);
        }
        if (next == 0) {
            if (!p.status_path.empty())
                supervise(l->plan, p, wfd, commit.fd[1].get());
            exec_program(l->plan, p, wfd);
        }
        if (p.status_path.empty())
            detail::write_report(wfd, {'P', 0, next});
        ::_exit(0);
    }
    l->first = first;
    l->report_fd = report.fd[0].release();
    l->commit_fd = commit.fd[0].release();
    return l;
}

// The reports are in (EOF: exec'd, or failed): the handle, or the error.
detached_process end_launch(launch& l, const detail::exec_outcome& outcome) {
    ::close(std::exchange(l.report_fd, -1));
    l.reap();
    if (outcome.error) {
        auto stage = static_cast<exec_stage>(outcome.error->stage);
        std::string extra = stage == exec_stage::open_stdout   ? l.p.stdout_path
                            : stage == exec_stage::open_stderr ? l.p.stderr_path
                            : stage == exec_stage::lock        ? l.p.lock_path
                                                               : std::string();
        detail::throw_exec_failure(l.plan, *outcome.error, extra);
    }
    if (outcome.pid <= 0)
        throw_error(errc::process_failed,
                    "starting " + l.plan.command() + " detached: no pid came back");
    return detached_access::make(outcome.pid, std::exchange(l.commit_fd, -1));
}

} // namespace

detached_process spawn_detached(const detached_options& opts) {
    auto l = begin_launch(opts);
    return end_launch(*l, detail::read_reports(l->report_fd));
}

asio::awaitable<detached_process> launch_detached(detached_options opts) {
    auto l = begin_launch(opts);
    // The reports, read on the io_context until EOF (the program exec'd or
    // failed), then taken apart as read_reports does.
    asio::posix::stream_descriptor pipe(co_await asio::this_coro::executor,
                                        std::exchange(l->report_fd, -1));
    std::string bytes;
    std::array<char, 256> buf;
    for (;;) {
        boost::system::error_code ec;
        std::size_t n = co_await pipe.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        bytes.append(buf.data(), n);
        if (ec == asio::error::eof)
            break;
        if (ec == asio::error::operation_aborted)
            throw boost::system::system_error(ec); // l's destructor abandons the program
        if (ec)
            throw_error(errc::process_failed, "reading the exec status pipe of " +
                                                  l->plan.command() + ": " + ec.message());
    }
    co_return end_launch(*l, detail::exec_outcome::parse(bytes));
}

std::optional<exit_status> read_exit_status(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::string line;
    if (!in || !std::getline(in, line))
        return std::nullopt;
    std::istringstream words(line);
    exit_status st;
    long n = 0;
    if (!(words >> st.how >> n) || (st.how != "exited" && st.how != "signaled"))
        return std::nullopt;
    st.number = static_cast<int>(n);
    std::string note;
    st.abandoned = (words >> note) && note == "abandoned";
    return st;
}

bool alive(pid_t pid) noexcept {
    if (pid <= 0)
        return false;
    if (::kill(pid, 0) != 0 && errno != EPERM)
        return false;
    // kill() also succeeds on a zombie: ask /proc for the state.
    char path[32];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char* close_paren = std::strrchr(buf, ')'); // comm may contain ')'
    if (!close_paren || close_paren[1] != ' ')
        return true;
    char state = close_paren[2];
    return state != 'Z' && state != 'X' && state != 'x';
}

pidfd pidfd::open(pid_t pid) {
    if (pid <= 0)
        throw_error(errc::invalid_argument, "pidfd: invalid pid " + std::to_string(pid));
    auto fd = sys::pidfd_open(pid);
    if (!fd && errno != ESRCH)
        sys::throw_errno(errc::unsupported,
                         "pidfd_open(" + std::to_string(pid) + ") (needs Linux >= 5.3)", errno);
    return pidfd(pid, fd.release());
}

pidfd::pidfd(pidfd&& other) noexcept
    : pid_(std::exchange(other.pid_, -1))
    , fd_(std::exchange(other.fd_, -1)) {}

pidfd& pidfd::operator=(pidfd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0)
            ::close(fd_);
        pid_ = std::exchange(other.pid_, -1);
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

pidfd::~pidfd() {
    if (fd_ >= 0)
        ::close(fd_);
}

bool pidfd::exited() const noexcept {
    return fd_ < 0 || sys::pidfd_exited(fd_);
}

bool pidfd::send_signal(int sig) noexcept {
    if (fd_ < 0) {
        errno = ESRCH;
        return false;
    }
    return sys::pidfd_send_signal(fd_, sig);
}

asio::awaitable<bool> pidfd::wait_exit(std::chrono::milliseconds timeout) const {
    if (fd_ < 0)
        co_return true;
    co_return co_await sys::pidfd_wait(fd_, timeout);
}

asio::awaitable<bool> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
    if (pid <= 0)
        throw_error(errc::invalid_argument, "wait_exit: invalid pid " + std::to_string(pid));
    auto fd = pidfd::open(pid);
    co_return co_await fd.wait_exit(timeout);
}

} // namespace localvm::process
