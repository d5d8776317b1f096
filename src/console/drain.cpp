// The console log's drainer: QEMU's chardev log goes into a FIFO that a
// process copies into a rotating log. A process, not a coroutine of ours,
// because the VM outlives its starter; localvm's helper program
// localvm-console (drain_child.cpp), exec'd, because a fork of ours living
// as long as the VM would pin a copy-on-write image of our memory; spawned
// without a fork of ours (sys/spawn_helper.hpp), because fork copies our page
// tables, which takes time in proportion to our size.
#include <localvm/console/drain.hpp>
#include <localvm/error.hpp>

#include "drain_child.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include "sys/inotify.hpp"
#include "sys/libexec.hpp"
#include "sys/pidfd.hpp"
#include "sys/spawn_helper.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace localvm::console {
namespace asio = boost::asio;

namespace detail {

// A drainer whose helper is spawned and whose pid is still to come: the
// report pipe's read end, our end of the control socket, and the helper's
// first process (ours, exiting at once: reaped on destruction).
struct drain_start {
    std::string helper;
    std::string fifo;
    sys::unique_fd report;
    sys::unique_fd control;
    pid_t first = -1;
    drain_start() = default;
    drain_start(const drain_start&) = delete;
    drain_start& operator=(const drain_start&) = delete;
    ~drain_start() { reap(); }
    void reap() noexcept {
        while (first > 0 && ::waitpid(first, nullptr, 0) < 0 && errno == EINTR) {
        }
        first = -1;
    }
};

} // namespace detail

namespace {

std::string with_suffix(const std::filesystem::path& p, const char* suffix) {
    return p.string() + suffix;
}

[[noreturn]] void fail(const std::string& what, int err) {
    sys::throw_errno(errc::io_error, what, err);
}

} // namespace

std::filesystem::path drain_fifo(const std::filesystem::path& log) {
    return with_suffix(log, ".fifo");
}

std::filesystem::path rotated_log(const std::filesystem::path& log) {
    return with_suffix(log, ".1");
}

namespace {

// Everything up to the helper spawned (synchronous, and brief: no fork of
// this process, see sys/spawn_helper.hpp).
std::unique_ptr<detail::drain_start> begin_start(const std::filesystem::path& log,
                                                 drain_options options) {
    auto st = std::make_unique<detail::drain_start>();
    // The helper first: a missing one is an error before anything is made.
    st->helper = sys::helper_program("localvm-console");
    const std::string& helper = st->helper;
    auto abs = std::filesystem::absolute(log);
    const std::string log_path = abs.string();
    const std::string rotated = rotated_log(abs).string();
    st->fifo = drain_fifo(abs).string();
    const std::string& fifo = st->fifo;
    detail::drain_plan p;
    p.log = log_path.c_str();
    p.rotated = rotated.c_str();
    p.fifo = fifo.c_str();
    p.limit = std::max<std::uint64_t>(1, options.rotate_bytes);
    p.connect_timeout_ms = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(
        options.connect_timeout.count(), 0, std::numeric_limits<int>::max()));
    std::vector<std::string> args{helper,    "--log",   log_path, "--rotated",
                                  rotated,   "--fifo",  fifo,     "--limit",
                                  std::to_string(p.limit),        "--connect-timeout-ms",
                                  std::to_string(p.connect_timeout_ms)};
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    // A fresh FIFO: a drainer of an earlier run still waiting on the old one
    // cannot take this run's output.
    if (::unlink(p.fifo) != 0 && errno != ENOENT)
        fail("cannot remove the old console FIFO " + fifo, errno);
    if (::mkfifo(p.fifo, 0600) != 0)
        fail("cannot make the console FIFO " + fifo, errno);
    // Non-blocking, so neither the drainer nor QEMU waits for the other in
    // open(); the drainer polls.
    sys::unique_fd in(::open(p.fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!in)
        fail("cannot open the console FIFO " + fifo, errno);
    // A fresh log per run: readers following the path see a new file.
    ::unlink(p.rotated);
    if (::unlink(p.log) != 0 && errno != ENOENT)
        fail("cannot remove the old console log " + log_path, errno);
    sys::unique_fd out(detail::open_drain_log(p));
    if (!out)
        fail("cannot create the console log " + log_path, errno);

    // A socket pair rather than a pipe: release() to a drainer that has
    // already gone gets EPIPE, not SIGPIPE.
    int ctl[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0)
        sys::throw_errno(errc::process_failed, "cannot make a pipe for the console drainer", errno);
    sys::unique_fd control_read(ctl[0]);
    st->control.reset(ctl[1]);
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0)
        sys::throw_errno(errc::process_failed, "cannot make a pipe for the console drainer", errno);
    st->report.reset(report[0]);
    sys::unique_fd report_write(report[1]);
    // The helper's fds 3..6 (see src/libexec/localvm-console.cpp). It forks
    // itself into the background: re-parented away (never our zombie), it
    // outlives us.
    const int fds[4] = {in.get(), out.get(), report[1], ctl[0]};
    pid_t first = -1;
    if (int e = sys::spawn_helper(first, helper.c_str(), argv.data(), environ, fds))
        sys::throw_errno(e == ENOENT ? errc::not_found : errc::process_failed,
                         "cannot run localvm's console drainer " + helper, e);
    st->first = first;
    return st;
}

// What the report said (the drainer's pid, or -errno): the drainer.
pid_t drainer_pid(const detail::drain_start& st, std::size_t got, pid_t pid) {
    if (got != sizeof pid || pid == 0)
        throw_error(errc::process_failed, "the console drainer (" + st.helper + ") did not start");
    if (pid < 0)
        sys::throw_errno(-pid == ENOENT ? errc::not_found : errc::process_failed,
                         "cannot run localvm's console drainer " + st.helper, -pid);
    return pid;
}

} // namespace

std::size_t rotation_split(std::uint64_t size, std::uint64_t limit, std::string_view chunk) {
    return detail::rotation_split(size, limit, chunk);
}

log_drainer log_drainer::start(const std::filesystem::path& log, drain_options options) {
    auto st = begin_start(log, options);
    pid_t pid = 0;
    const std::size_t got = sys::read_full(st->report.get(), &pid, sizeof pid);
    const pid_t drainer = drainer_pid(*st, got, pid);
    st->reap();
    // It cannot exit before a writer came or its connect timeout passed, so
    // this pid is still its own.
    return log_drainer(drainer, sys::pidfd_open(drainer).release(), st->control.release(),
                       st->fifo);
}

asio::awaitable<log_drainer> log_drainer::launch(std::filesystem::path log,
                                                 drain_options options) {
    co_return co_await begin(log, options).started();
}

log_drainer::pending log_drainer::begin(const std::filesystem::path& log, drain_options options) {
    return pending(begin_start(log, options));
}

log_drainer::pending::pending(std::unique_ptr<detail::drain_start> st) noexcept
    : st_(std::move(st)) {}
log_drainer::pending::pending(pending&&) noexcept = default;
log_drainer::pending& log_drainer::pending::operator=(pending&&) noexcept = default;
log_drainer::pending::~pending() = default;

asio::awaitable<log_drainer> log_drainer::pending::started() {
    if (!st_)
        throw_error(errc::invalid_argument, "log_drainer::pending::started called twice");
    auto st = std::move(st_);
    asio::posix::stream_descriptor pipe(co_await asio::this_coro::executor, st->report.release());
    pid_t pid = 0;
    boost::system::error_code ec;
    const std::size_t got = co_await asio::async_read(
        pipe, asio::buffer(&pid, sizeof pid), asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted)
        throw boost::system::system_error(ec); // control closes: the drainer gives up
    const pid_t drainer = drainer_pid(*st, got, pid);
    // The helper's first process has exited or is about to: reaped without
    // blocking the thread.
    if (auto fd = sys::pidfd_open(st->first))
        co_await sys::pidfd_wait(fd.get(), std::chrono::milliseconds(5000));
    st->reap();
    co_return log_drainer(drainer, sys::pidfd_open(drainer).release(), st->control.release(),
                          st->fifo);
}

log_drainer::log_drainer(pid_t pid, int pidfd, int control, std::filesystem::path fifo) noexcept
    : pid_(pid)
    , pidfd_(pidfd)
    , control_(control)
    , fifo_(std::move(fifo)) {}

log_drainer::log_drainer(log_drainer&& o) noexcept
    : pid_(std::exchange(o.pid_, -1))
    , pidfd_(std::exchange(o.pidfd_, -1))
    , control_(std::exchange(o.control_, -1))
    , fifo_(std::move(o.fifo_)) {}

log_drainer& log_drainer::operator=(log_drainer&& o) noexcept {
    if (this != &o) {
        this->~log_drainer();
        pid_ = std::exchange(o.pid_, -1);
        pidfd_ = std::exchange(o.pidfd_, -1);
        control_ = std::exchange(o.control_, -1);
        fifo_ = std::move(o.fifo_);
    }
    return *this;
}

log_drainer::~log_drainer() {
    if (control_ >= 0)
        ::close(control_); // unreleased: the drainer gives up
    if (pid_ > 0)
        poke();
    if (pidfd_ >= 0)
        ::close(pidfd_);
}

void log_drainer::release() noexcept {
    if (control_ >= 0) {
        char r = 'R';
        while (::send(control_, &r, 1, MSG_NOSIGNAL) < 0 && errno == EINTR) {
        }
        ::close(control_);
        control_ = -1;
    }
    pid_ = -1;
}

// A writer that opens and closes at once: a drainer still waiting for its
// writer sees the end of its input and exits. ENXIO: no reader left.
void log_drainer::poke() const noexcept {
    int fd = ::open(fifo_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0)
        ::close(fd);
}

asio::awaitable<void> log_drainer::finish(std::chrono::milliseconds grace) {
    if (pid_ <= 0)
        co_return;
    if (control_ >= 0) {
        ::close(control_);
        control_ = -1;
    }
    poke();
    pid_ = -1;
    if (pidfd_ < 0)
        co_return;
    try {
        if (!co_await sys::pidfd_wait(pidfd_, grace)) {
            sys::pidfd_send_signal(pidfd_, SIGKILL);
            co_await sys::pidfd_wait(pidfd_, std::chrono::seconds(5));
        }
    } catch (const localvm::error&) {
        sys::pidfd_send_signal(pidfd_, SIGKILL); // cannot wait for it: do not leave it
    } catch (const boost::system::system_error&) {
        sys::pidfd_send_signal(pidfd_, SIGKILL); // cancelled
        throw;
    }
}

asio::awaitable<bool> wait_drained(const std::filesystem::path& log,
                                   std::chrono::milliseconds timeout) {
    auto fifo = drain_fifo(log);
    auto ex = co_await asio::this_coro::executor;
    // No reader on the FIFO: the drainer is gone (or was killed).
    auto done = [&] {
        int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return errno == ENOENT || errno == ENXIO || errno == ENOTDIR;
        ::close(fd); // the drainer may see this open as a writer come and gone: harmless
        return false;
    };
    std::optional<sys::inotify> notify;
    try {
        notify.emplace(ex);
    } catch (const localvm::error&) {
        co_return done(); // no inotify: what is true now
    }
    auto dir = fifo.parent_path();
    notify->watch(dir.empty() ? "." : dir, IN_DELETE | IN_MOVED_FROM);
    co_return co_await notify->wait_until(done, std::chrono::steady_clock::now() + timeout);
}

} // namespace localvm::console
