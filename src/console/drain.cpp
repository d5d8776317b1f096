// The console log's drainer: QEMU's chardev log goes into a FIFO that a
// process copies into a rotating log. A process, not a coroutine of ours,
// because the VM outlives its starter; localvm's helper program
// localvm-console (drain_child.cpp), exec'd, because a fork of ours living
// as long as the VM would pin a copy-on-write image of our memory. Between
// our fork and that exec everything is async-signal-safe: argv and paths are
// prepared before the fork.
#include <localvm/console/drain.hpp>
#include <localvm/error.hpp>

#include "drain_child.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include "sys/inotify.hpp"
#include "sys/libexec.hpp"
#include "sys/pidfd.hpp"
#include "sys/signals.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <limits>
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

// The helper's fixed descriptors (see src/libexec/localvm-console.cpp).
constexpr int helper_fifo_fd = 3, helper_log_fd = 4, helper_report_fd = 5, helper_control_fd = 6;

// In our grandchild: the helper, with `fds` (FIFO, log, report, control) on
// 3..6, stdio on /dev/null, nothing else of ours, default signals. On
// failure it reports -errno in place of a pid. Async-signal-safe; never
// returns.
[[noreturn]] void exec_drainer(const char* helper, char* const* argv, const int (&fds)[4],
                               int report_fd) {
    auto fail_with = [&report_fd](int err) {
        pid_t code = -err;
        if (::write(report_fd, &code, sizeof code) < 0) {
        }
        ::_exit(127);
    };
    // Above 6 first, so that no dup2 overwrites another's source.
    int high[4];
    for (int i = 0; i < 4; ++i)
        if ((high[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, helper_control_fd + 1)) < 0)
            fail_with(errno);
    for (int i = 0; i < 4; ++i)
        if (::dup2(high[i], helper_fifo_fd + i) < 0) // clears close-on-exec
            fail_with(errno);
    report_fd = helper_report_fd;
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0)
        fail_with(errno);
    for (int i = 0; i < 3; ++i)
        if (::dup2(null_fd, i) < 0)
            fail_with(errno);
    // Close-on-exec for everything above 6 (Linux 5.11's CLOSE_RANGE_CLOEXEC,
    // else closed now: nothing of ours is needed until exec).
    if (::close_range(helper_control_fd + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        ::close_range(helper_control_fd + 1, ~0U, 0);
    sys::reset_signals();
    ::execv(helper, argv);
    fail_with(errno);
    ::_exit(127);
}

} // namespace

std::size_t rotation_split(std::uint64_t size, std::uint64_t limit, std::string_view chunk) {
    return detail::rotation_split(size, limit, chunk);
}

log_drainer log_drainer::start(const std::filesystem::path& log, drain_options options) {
    // The helper first: a missing one is an error before anything is made.
    const std::string helper = sys::helper_program("localvm-console");
    auto abs = std::filesystem::absolute(log);
    const std::string log_path = abs.string();
    const std::string rotated = rotated_log(abs).string();
    const std::string fifo = drain_fifo(abs).string();
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
    sys::unique_fd control_read(ctl[0]), control_write(ctl[1]);
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0)
        sys::throw_errno(errc::process_failed, "cannot make a pipe for the console drainer", errno);
    sys::unique_fd report_read(report[0]), report_write(report[1]);
    const int fds[4] = {in.get(), out.get(), report[1], ctl[0]};
    // fork, setsid, fork: the drainer is re-parented away at once (never our
    // zombie) and outlives us.
    pid_t first = ::fork();
    if (first < 0)
        sys::throw_errno(errc::process_failed, "cannot fork the console drainer", errno);
    if (first == 0) {
        ::close(report[0]);
        ::setsid();
        pid_t next = ::fork();
        if (next == 0) {
            ::close(ctl[1]);
            exec_drainer(args[0].c_str(), argv.data(), fds, report[1]);
        }
        ::_exit(next < 0 ? 1 : 0);
    }
    report_write.reset();
    while (::waitpid(first, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_t pid = 0;
    if (sys::read_full(report_read.get(), &pid, sizeof pid) != sizeof pid || pid == 0)
        throw_error(errc::process_failed, "the console drainer (" + helper + ") did not start");
    if (pid < 0)
        sys::throw_errno(-pid == ENOENT ? errc::not_found : errc::process_failed,
                         "cannot run localvm's console drainer " + helper, -pid);
    // It cannot exit before a writer came or its connect timeout passed, so
    // this pid is still its own.
    return log_drainer(pid, sys::pidfd_open(pid).release(), control_write.release(), fifo);
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
