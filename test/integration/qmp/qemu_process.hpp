// A paused QEMU (TCG, no guest, no NIC) with a QMP socket, for the QMP
// tests and benchmark. Plain fork/exec on purpose: the QMP layer must not
// depend on the process layer. Killed and reaped on destruction.
#pragma once

#include <localvm/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace localvm::test {

class qemu_process {
public:
    /// A QEMU with `monitors` QMP sockets: socket(), then qmp-1.sock, ...,
    /// and `extra` arguments (e.g. "-incoming", "defer").
    explicit qemu_process(int monitors = 1, std::vector<std::string> extra = {}) {
        monitors = std::max(monitors, 1);
        char tmpl[] = "/tmp/localvm-qmp-XXXXXX";
        if (!::mkdtemp(tmpl))
            throw_error(errc::io_error, "mkdtemp failed");
        dir_ = tmpl;
        // Watch before starting QEMU so that the socket's creation is not missed.
        inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (inotify_ < 0 || ::inotify_add_watch(inotify_, dir_.c_str(), IN_CREATE | IN_MOVED_TO) < 0)
            throw_error(errc::io_error, "inotify failed");
        std::vector<std::string> argv = {"qemu-system-x86_64", "-accel",   "tcg", "-S",
                                         "-nodefaults",        "-display", "none"};
        for (int i = 0; i < monitors; ++i) {
            sockets_.push_back(dir_ +
                               (i == 0 ? "/qmp.sock" : "/qmp-" + std::to_string(i) + ".sock"));
            argv.push_back("-qmp");
            argv.push_back("unix:" + sockets_.back() + ",server=on,wait=off");
        }
        argv.insert(argv.end(), extra.begin(), extra.end());
        std::vector<char*> args;
        for (auto& a : argv)
            args.push_back(a.data());
        args.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ < 0)
            throw_error(errc::process_failed, "fork failed");
        if (pid_ == 0) {
            int null = ::open("/dev/null", O_RDWR);
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::execvp(args[0], args.data());
            ::_exit(127);
        }
        pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    }

    qemu_process(const qemu_process&) = delete;
    qemu_process& operator=(const qemu_process&) = delete;

    ~qemu_process() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        if (inotify_ >= 0)
            ::close(inotify_);
        if (pidfd_ >= 0)
            ::close(pidfd_);
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    const std::string& socket() const { return sockets_.front(); }
    const std::vector<std::string>& sockets() const { return sockets_; } ///< Every QMP socket.
    pid_t pid() const { return pid_; }
    void kill(int sig) { ::kill(pid_, sig); }

    /// Waits (on inotify) until QEMU has created its QMP sockets.
    boost::asio::awaitable<void> wait_for_socket(std::chrono::steady_clock::duration timeout) {
        auto ex = co_await boost::asio::this_coro::executor;
        boost::asio::posix::stream_descriptor d(ex, ::dup(inotify_));
        boost::asio::steady_timer t(ex, timeout);
        auto timed_out = std::make_shared<bool>(false);
        t.async_wait([timed_out, &d](boost::system::error_code ec) {
            if (!ec) {
                *timed_out = true;
                d.cancel();
            }
        });
        auto all_exist = [&] {
            return std::all_of(sockets_.begin(), sockets_.end(),
                               [](const std::string& p) { return std::filesystem::exists(p); });
        };
        while (!all_exist()) {
            boost::system::error_code ec;
            co_await d.async_wait(boost::asio::posix::descriptor_base::wait_read,
                                  boost::asio::redirect_error(boost::asio::use_awaitable, ec));
            if (*timed_out)
                throw_error(errc::timeout, "QEMU did not create " + sockets_.back());
            std::array<char, 4096> buf;
            while (::read(inotify_, buf.data(), buf.size()) > 0) {
            }
        }
        // QEMU binds (the file appears) and then listens; no event marks the
        // second step, which follows within microseconds. Probe until a
        // connect is accepted, yielding to the io_context between tries.
        while (!std::all_of(sockets_.begin(), sockets_.end(),
                            [](const std::string& p) { return listening(p); })) {
            if (*timed_out)
                throw_error(errc::timeout, "QEMU did not listen on " + sockets_.back());
            co_await boost::asio::post(ex, boost::asio::use_awaitable);
        }
        t.cancel();
    }

    /// Waits (on a pidfd) for QEMU to exit; its exit code, or 128 + signal.
    boost::asio::awaitable<int> wait(std::chrono::steady_clock::duration timeout = std::chrono::seconds(20)) {
        auto ex = co_await boost::asio::this_coro::executor;
        boost::asio::posix::stream_descriptor d(ex, ::dup(pidfd_));
        boost::asio::steady_timer t(ex, timeout);
        auto timed_out = std::make_shared<bool>(false);
        t.async_wait([timed_out, &d](boost::system::error_code ec) {
            if (!ec) {
                *timed_out = true;
                d.cancel();
            }
        });
        boost::system::error_code ec;
        co_await d.async_wait(boost::asio::posix::descriptor_base::wait_read,
                              boost::asio::redirect_error(boost::asio::use_awaitable, ec));
        t.cancel();
        if (*timed_out)
            throw_error(errc::timeout, "QEMU did not exit");
        int status = 0;
        ::waitpid(pid_, &status, 0);
        reaped_ = true;
        co_return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

private:
    static bool listening(const std::string& path) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return ok;
    }

    std::string dir_;
    std::vector<std::string> sockets_;
    int inotify_ = -1;
    int pidfd_ = -1;
    pid_t pid_ = -1;
    bool reaped_ = false;
};

} // namespace localvm::test
