// The console log's drain, the library side: the names of its files, the
// files made fresh for a run (drain_files.hpp), and the wait until the copy
// is complete. The copy itself runs in the supervisor of the QEMU process
// (drain_child.cpp, in localvm's helper program localvm-supervise): a
// process, not a coroutine of ours, because the VM outlives its starter; the
// supervisor, not a process of its own, because it is there for the VM's
// whole life anyway, and one helper per VM starts sooner than two.
#include <localvm/console/drain.hpp>
#include <localvm/error.hpp>

#include "drain_child.hpp"
#include "drain_files.hpp"
#include "sys/errno.hpp"
#include "sys/inotify.hpp"

#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm::console {
namespace asio = boost::asio;

namespace {

std::string with_suffix(const std::filesystem::path& p, const char* suffix) {
    return p.string() + suffix;
}

} // namespace

std::filesystem::path drain_fifo(const std::filesystem::path& log) {
    return with_suffix(log, ".fifo");
}

std::filesystem::path rotated_log(const std::filesystem::path& log) {
    return with_suffix(log, ".1");
}

std::size_t rotation_split(std::uint64_t size, std::uint64_t limit, std::string_view chunk) {
    return detail::rotation_split(size, limit, chunk);
}

namespace detail {

void drain_files::remove_fifo() const noexcept {
    if (!fifo.empty())
        remove_fifo_if_same(fifo.c_str(), fifo_dev, fifo_ino);
}

drain_files make_drain_files(const std::filesystem::path& log, std::uint64_t rotate_bytes) {
    drain_files f;
    auto abs = std::filesystem::absolute(log);
    f.log = abs.string();
    f.rotated = rotated_log(abs).string();
    f.fifo = drain_fifo(abs).string();
    f.limit = std::max<std::uint64_t>(1, rotate_bytes);
    auto fail = [&f](const std::string& what, int err) {
        f.remove_fifo();
        sys::throw_errno(errc::io_error, what, err);
    };
    if (::unlink(f.fifo.c_str()) != 0 && errno != ENOENT)
        sys::throw_errno(errc::io_error, "cannot remove the old console FIFO " + f.fifo, errno);
    if (::mkfifo(f.fifo.c_str(), 0600) != 0)
        sys::throw_errno(errc::io_error, "cannot make the console FIFO " + f.fifo, errno);
    // Non-blocking both ways: neither this open, nor the supervisor, nor
    // QEMU's open (a reader exists from here on) waits for the other.
    f.in.reset(::open(f.fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (!f.in || ::fstat(f.in.get(), &st) != 0) {
        const int e = errno;
        ::unlink(f.fifo.c_str()); // ours: made just now, its identity still unknown
        sys::throw_errno(errc::io_error, "cannot open the console FIFO " + f.fifo, e);
    }
    f.fifo_dev = st.st_dev;
    f.fifo_ino = st.st_ino;
    f.hold.reset(::open(f.fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (!f.hold)
        fail("cannot open the console FIFO " + f.fifo, errno);
    ::unlink(f.rotated.c_str());
    if (::unlink(f.log.c_str()) != 0 && errno != ENOENT)
        fail("cannot remove the old console log " + f.log, errno);
    drain_plan p;
    p.log = f.log.c_str();
    f.out.reset(open_drain_log(p));
    if (!f.out)
        fail("cannot create the console log " + f.log, errno);
    return f;
}

} // namespace detail

asio::awaitable<bool> wait_drained(const std::filesystem::path& log,
                                   std::chrono::milliseconds timeout) {
    auto fifo = drain_fifo(log);
    auto ex = co_await asio::this_coro::executor;
    // No reader on the FIFO: the drainer is gone (or was killed).
    auto done = [&] {
        int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return errno == ENOENT || errno == ENXIO || errno == ENOTDIR;
        ::close(fd); // a writer come and gone: the supervisor holds its own, it reads on
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
