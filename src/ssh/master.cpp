// The control master of a multiplexed target: asking for its pid, ending it.
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/ssh/master.hpp>

#include <chrono>
#include <cstring>
#include <system_error>

#include "detail/await.hpp"
#include "sys/fd.hpp"
#include "sys/secure_dir.hpp"
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace localvm::ssh {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

// True when a unix socket file is there but nothing listens on it (a master
// killed before it could remove it): a non-blocking connect is refused at
// once then, and succeeds or says EAGAIN (a full queue) when one listens.
bool nobody_listens(const fs::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const auto& s = path.native();
    if (s.size() >= sizeof(addr.sun_path))
        return false;
    std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
    sys::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd)
        return false;
    const int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    return rc != 0 && errno == ECONNREFUSED;
}

constexpr milliseconds kill_grace{500};

bool socket_there(const fs::path& path) {
    auto st = sys::lstat_of(path);
    return st && S_ISSOCK(st->st_mode);
}

// `ssh -O COMMAND` within `timeout`; its result, or nullopt when it could
// not be run at all.
asio::awaitable<std::optional<process::result>> control(const fs::path& path, const char* command,
                                                        milliseconds timeout) {
    process::options po;
    po.argv = master_argv(path, command);
    po.timeout = std::max(timeout, milliseconds(1));
    po.kill_grace = kill_grace;
    po.out.mode = process::stream_mode::null;
    po.err.mode = process::stream_mode::capture;
    po.err.capture_limit = 4096;
    try {
        co_return co_await process::run(std::move(po));
    } catch (const localvm::error&) {
        co_return std::nullopt; // ssh is not installed, or cannot run
    }
}

} // namespace

asio::awaitable<std::optional<pid_t>> master_pid(fs::path control_path, milliseconds timeout) {
    if (control_path.empty() || !socket_there(control_path))
        co_return std::nullopt;
    auto r = co_await control(control_path, "check", timeout);
    if (!r || !r->success())
        co_return std::nullopt;
    co_return parse_master_pid(r->err);
}

asio::awaitable<master_end> end_master(fs::path control_path, milliseconds timeout) {
    if (control_path.empty() || !socket_there(control_path))
        co_return master_end::none;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto unlink_stale = [&control_path] {
        std::error_code ec;
        fs::remove(control_path, ec);
        return master_end::stale;
    };
    if (nobody_listens(control_path))
        co_return unlink_stale();
    auto pid = co_await master_pid(control_path, localvm::detail::time_left(deadline));
    if (!pid) {
        // It may have ended meanwhile (idle, or its connection dropped).
        if (!socket_there(control_path))
            co_return master_end::ended;
        co_return nobody_listens(control_path) ? unlink_stale() : master_end::left;
    }
    // From here on this pidfd is the master, whatever reuses its pid later.
    std::optional<process::pidfd> proc;
    try {
        proc.emplace(process::pidfd::open(*pid));
    } catch (const localvm::error&) {
        co_return master_end::left; // no pidfd_open: nothing to wait on
    }
    co_await control(control_path, "exit", localvm::detail::time_left(deadline));
    bool gone = co_await proc->wait_exit(localvm::detail::time_left(deadline));
    // A master that lingers (it could not be asked, or hangs sending its
    // disconnect to a dead peer) is ended as a child would be: SIGTERM,
    // then SIGKILL, each given a moment past the deadline.
    for (int sig : {SIGTERM, SIGKILL}) {
        if (gone)
            break;
        proc->send_signal(sig);
        gone = co_await proc->wait_exit(kill_grace);
    }
    if (!gone)
        co_return master_end::left;
    // SIGKILL leaves the socket behind.
    if (socket_there(control_path) && nobody_listens(control_path))
        unlink_stale();
    co_return master_end::ended;
}

} // namespace localvm::ssh
