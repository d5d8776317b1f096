// The console log's drainer: QEMU's chardev log goes into a FIFO that a
// forked process copies into a rotating log. A process, not a coroutine of
// ours, because the VM outlives its starter; forked without exec because the
// library ships no helper binary, so everything the child runs is
// async-signal-safe (no allocation, no locks: plain syscalls on paths and a
// buffer prepared before the fork).
#include <localvm/console/drain.hpp>
#include <localvm/error.hpp>

#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include "sys/inotify.hpp"
#include "sys/pidfd.hpp"

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

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace localvm::console {
namespace asio = boost::asio;

namespace {

std::string with_suffix(const std::filesystem::path& p, const char* suffix) {
    return p.string() + suffix;
}

struct plan {
    std::string log, rotated, fifo;
    std::uint64_t limit = 1;
    int connect_timeout_ms = 0;
};

bool same_file(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int open_log(const plan& p) {
    return ::open(p.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
}

// Writes what it can; a failure drops the rest (never stall the writer).
// Returns the bytes written.
std::uint64_t put(int fd, const char* data, std::size_t n, const plan& p) {
    std::uint64_t done = 0;
    bool made_room = false;
    while (n > 0 && fd >= 0) {
        const std::size_t w = sys::write_all(fd, data, n);
        data += w;
        n -= w;
        done += w;
        if (n > 0 && errno == ENOSPC && !made_room) {
            made_room = true; // the old part goes before the new output does
            ::unlink(p.rotated.c_str());
            continue;
        }
        break;
    }
    return done;
}

// Closes every fd from 3 up but those in `keep` (async-signal-safe).
void close_all_but(std::array<int, 4> keep) {
    std::sort(keep.begin(), keep.end());
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

// The drainer. Never returns.
// `control` is the read end of the starter's pipe: a 'R' byte releases the
// drainer to its writer; its end without one means the start was given up
// (the starter failed, or died: its QEMU dies with it), so no writer is
// worth waiting for.
[[noreturn]] void drain(const plan& p, int in, int log_fd, int report_fd, int control) {
    ::prctl(PR_SET_NAME, "localvm-console", 0, 0, 0);
    // Hold nothing of the starter's: its pipes would never see EOF.
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0)
        for (int i = 0; i < 3; ++i)
            ::dup2(null_fd, i);
    close_all_but({in, log_fd, report_fd, control});
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
        ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::chdir("/") != 0) {
    }
    pid_t self = ::getpid();
    if (::write(report_fd, &self, sizeof self) != sizeof self)
        ::_exit(1);
    ::close(report_fd);

    struct stat fifo_st {};
    ::fstat(in, &fifo_st);
    static char buf[64 * 1024]; // the child's own copy: no allocation here
    std::uint64_t size = 0;
    int timeout = p.connect_timeout_ms; // until the writer comes
    bool given_up = false;
    for (;;) {
        pollfd pfd[2] = {{in, POLLIN, 0}, {control, POLLIN, 0}};
        int r = ::poll(pfd, control >= 0 ? 2 : 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; // no writer came, or poll failed
        if (control >= 0 && pfd[1].revents != 0) {
            char c = 0;
            ssize_t n = ::read(control, &c, 1);
            if (n < 0 && errno == EINTR)
                continue;
            // 'R': released to the writer. Anything else: the start was
            // given up; copy what is already there, then end.
            given_up = n != 1 || c != 'R';
            ::close(control);
            control = -1;
            if (given_up)
                timeout = 0;
            continue;
        }
        if (!given_up)
            timeout = -1;
        ssize_t n = ::read(in, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break; // the writer closed: QEMU is gone
        std::string_view data(buf, static_cast<std::size_t>(n));
        while (!data.empty()) {
            auto k = rotation_split(size, p.limit, data);
            if (k > 0) {
                size += put(log_fd, data.data(), k, p);
                data.remove_prefix(k);
            }
            if (data.empty())
                break;
            ::rename(p.log.c_str(), p.rotated.c_str());
            if (log_fd >= 0)
                ::close(log_fd);
            log_fd = open_log(p); // -1: this output is lost, the next try is at the next rotation
            size = 0;
        }
    }
    if (log_fd >= 0)
        ::close(log_fd);
    // Done: the FIFO goes (unless a later start made a new one there).
    struct stat now {};
    if (::stat(p.fifo.c_str(), &now) == 0 && same_file(now, fifo_st))
        ::unlink(p.fifo.c_str());
    ::_exit(0);
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

std::size_t rotation_split(std::uint64_t size, std::uint64_t limit, std::string_view chunk) {
    if (limit == 0)
        limit = 1;
    std::uint64_t room = size >= limit ? 0 : limit - size;
    if (chunk.size() <= room)
        return chunk.size();
    auto fits = chunk.substr(0, static_cast<std::size_t>(room));
    auto nl = fits.rfind('\n');
    if (nl != std::string_view::npos)
        return nl + 1;
    return size == 0 ? fits.size() : 0; // an empty file takes the cut line
}

log_drainer log_drainer::start(const std::filesystem::path& log, drain_options options) {
    plan p;
    auto abs = std::filesystem::absolute(log);
    p.log = abs.string();
    p.rotated = rotated_log(abs).string();
    p.fifo = drain_fifo(abs).string();
    p.limit = std::max<std::uint64_t>(1, options.rotate_bytes);
    p.connect_timeout_ms = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(
        options.connect_timeout.count(), 0, std::numeric_limits<int>::max()));

    // A fresh FIFO: a drainer of an earlier run still waiting on the old one
    // cannot take this run's output.
    if (::unlink(p.fifo.c_str()) != 0 && errno != ENOENT)
        fail("cannot remove the old console FIFO " + p.fifo, errno);
    if (::mkfifo(p.fifo.c_str(), 0600) != 0)
        fail("cannot make the console FIFO " + p.fifo, errno);
    // Non-blocking, so neither the drainer nor QEMU waits for the other in
    // open(); the drainer polls.
    sys::unique_fd in(::open(p.fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!in)
        fail("cannot open the console FIFO " + p.fifo, errno);
    // A fresh log per run: readers following the path see a new file.
    ::unlink(p.rotated.c_str());
    if (::unlink(p.log.c_str()) != 0 && errno != ENOENT)
        fail("cannot remove the old console log " + p.log, errno);
    sys::unique_fd out(open_log(p));
    if (!out)
        fail("cannot create the console log " + p.log, errno);

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
            drain(p, in.get(), out.get(), report[1], ctl[0]);
        }
        ::_exit(next < 0 ? 1 : 0);
    }
    report_write.reset();
    while (::waitpid(first, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_t pid = -1;
    if (sys::read_full(report_read.get(), &pid, sizeof pid) != sizeof pid || pid <= 0)
        throw_error(errc::process_failed, "the console drainer did not start");
    // It cannot exit before a writer came or its connect timeout passed, so
    // this pid is still its own.
    return log_drainer(pid, sys::pidfd_open(pid).release(), control_write.release(), p.fifo);
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
