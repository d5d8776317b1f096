// Detached processes: not our child for long, so that the program survives
// our exit and never becomes our zombie. localvm's helper program
// `localvm-supervise` is started with posix_spawn (spawn_helper.hpp: no
// copy of our page tables, whatever our size) and forks itself into the
// background at once (the parent we reap exits). With an exit status
// file, it is the program's supervisor and its child is the program:
// exec'd, not a fork of ours that goes on running, which would pin a
// copy-on-write image of our memory for the program's whole life. Without
// one (`--detach`), it becomes the program itself. So this process is
// never forked. What the supervisor does is in supervisor.cpp.
#include "console/drain_files.hpp"
#include "exec.hpp"
#include "supervisor.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include "sys/libexec.hpp"
#include "sys/pidfd.hpp"
#include "sys/spawn_helper.hpp"

#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
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
    std::string lock_path;   // empty: none
    bool hold_stdin = false;
    // With a drain_log: its FIFO and log, made once the helper was found.
    std::optional<console::detail::drain_files> drain;
    // The helper's command line (see src/libexec/localvm-supervise.cpp).
    std::string helper;
    std::vector<std::string> helper_args;
    std::vector<char*> helper_argv;
};

// Fills in the helper's command line: the program's supervisor, or
// (without a status file) `--detach`, the program's own start; the
// helper's environment is the program's. A drained log's files are made
// here, once the helper is known to exist.
void prepare_exec(prepared& p, const detail::exec_plan& plan, const detached_options& opts) {
    p.helper = sys::helper_program("localvm-supervise");
    auto& a = p.helper_args;
    a = {p.helper};
    if (p.status_path.empty())
        a.push_back("--detach");
    else
        a.insert(a.end(), {"--status", p.status_path});
    auto option = [&a](const char* name, const std::string& value) {
        if (!value.empty())
            a.insert(a.end(), {name, value});
    };
    option("--stdout", p.stdout_path);
    option("--stderr", p.stderr_path);
    option("--lock", p.lock_path);
    option("--cwd", plan.cwd() ? plan.cwd() : "");
    if (p.hold_stdin)
        a.push_back("--hold-stdin");
    if (!opts.drain_log.empty()) {
        p.drain = console::detail::make_drain_files(opts.drain_log, opts.drain_rotate_bytes);
        a.insert(a.end(), {"--drain-log", p.drain->log, "--drain-rotated", p.drain->rotated,
                           "--drain-fifo", p.drain->fifo, "--drain-limit",
                           std::to_string(p.drain->limit)});
    }
    a.push_back("--");
    a.push_back(plan.path());
    for (char* const* arg = plan.argv(); *arg; ++arg)
        a.push_back(*arg);
    for (auto& arg : a)
        p.helper_argv.push_back(arg.data());
    p.helper_argv.push_back(nullptr);
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
    // Not waiting for the supervisor to read it: the byte is queued before
    // the end of the stream that closing our end makes, so the supervisor
    // reads the commit first even if this process dies this instant.
    ::close(std::exchange(channel_, -1));
    return n == 1;
}

asio::awaitable<bool> detached_process::hand_over() {
    co_return commit();
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

// A launch, prepared and then spawned, whose reports are still to come.
// Owns the report pipe's read end, our end of the commit channel, and the
// helper's first process (reaped on destruction: it exits at once); until
// the helper is spawned (while the FIFO's ends are still ours), a drained
// log's FIFO (removed on destruction: no supervisor took it over).
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
        if (p.drain && p.drain->in)
            p.drain->remove_fifo();
    }
    void reap() {
        int st = 0;
        while (first > 0 && ::waitpid(first, &st, 0) < 0 && errno == EINTR) {
        }
        first = -1;
    }
};

// The processes up to the program's exec: the helper spawned.
void start_first(launch& l) {
    prepared& p = l.p;
    const bool supervised = !p.status_path.empty();
    // A status left by an earlier run must not describe this one.
    if (supervised && ::unlink(p.status_path.c_str()) != 0 && errno != ENOENT)
        sys::throw_errno(errc::io_error, "cannot remove the old exit status file " + p.status_path,
                         errno);

    fd_pair report;
    int raw[2];
    if (::pipe2(raw, O_CLOEXEC) != 0)
        sys::throw_errno(errc::process_failed, "cannot create a pipe for " + l.plan.command(), errno);
    report.take(raw);
    // The helper gets the report pipe on its fd 3; a supervisor, the commit
    // channel on 4, and a drained log's FIFO (both ends) and log on 5 to 7.
    int helper_fds[5] = {report.fd[1].get()};
    std::size_t n_fds = 1;
    fd_pair commit; // [0] ours, [1] the supervisor's
    if (supervised) {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, raw) != 0)
            sys::throw_errno(errc::process_failed,
                             "cannot create a commit channel for " + l.plan.command(), errno);
        commit.take(raw);
        helper_fds[n_fds++] = commit.fd[1].get();
    }
    if (p.drain)
        for (int fd : {p.drain->in.get(), p.drain->hold.get(), p.drain->out.get()})
            helper_fds[n_fds++] = fd;
    pid_t helper = -1;
    if (int e = sys::spawn_helper(helper, p.helper.c_str(), p.helper_argv.data(), l.plan.envp(),
                                  std::span<const int>(helper_fds, n_fds)))
        detail::throw_exec_failure(l.plan, {'E', static_cast<int>(exec_stage::helper), e},
                                   p.helper);
    l.first = helper;
    l.report_fd = report.fd[0].release();
    l.commit_fd = commit.fd[0].release();
    if (p.drain) { // the supervisor has its own copies of the fds now
        p.drain->in.reset();
        p.drain->hold.reset();
        p.drain->out.reset();
    }
}

// Everything up to the helper's spawn: checks, paths, the helper's
// command line, a drained log's files.
std::unique_ptr<launch> prepare_launch(const detached_options& opts) {
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
    if (!opts.drain_log.empty() && p.status_path.empty())
        throw_error(errc::invalid_argument,
                    "detached_options::drain_log needs exit_status_file (a supervisor), for " +
                        l->plan.command());
    prepare_exec(p, l->plan, opts);
    return l;
}

// The reports are in (EOF: exec'd, or failed): the handle, or the error.
detached_process end_launch(launch& l, const detail::exec_outcome& outcome) {
    ::close(std::exchange(l.report_fd, -1));
    l.reap();
    if ((outcome.error || outcome.pid <= 0) && l.p.drain)
        l.p.drain->remove_fifo(); // the supervisor has gone, or is going, without a program
    if (outcome.error) {
        auto stage = static_cast<exec_stage>(outcome.error->stage);
        std::string extra = stage == exec_stage::open_stdout   ? l.p.stdout_path
                            : stage == exec_stage::open_stderr ? l.p.stderr_path
                            : stage == exec_stage::lock        ? l.p.lock_path
                            : stage == exec_stage::helper      ? l.p.helper
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
    auto l = prepare_launch(opts);
    start_first(*l);
    return end_launch(*l, detail::read_reports(l->report_fd));
}

asio::awaitable<detached_process> launch_detached(detached_options opts) {
    auto l = prepare_launch(opts);
    // Prepared: let the io_context's other ready work run before the spawn.
    // Many launches started at once then all prepare first, while the
    // machine is still idle, and spawn back to back; otherwise each
    // program spawned (a QEMU: a busy first second) competes for the CPU
    // with the preparing of the next ones.
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    start_first(*l);
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
    // The process we started exits right after its fork (before the
    // reports end, nearly always): reaped without blocking the thread.
    if (auto fd = sys::pidfd_open(l->first))
        co_await sys::pidfd_wait(fd.get(), std::chrono::milliseconds(5000));
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
