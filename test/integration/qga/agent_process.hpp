// The real QEMU guest agent (Debian's qemu-ga) running on the host, no guest:
// `qemu-ga -m unix-listen` on a socket in a private directory, with its own
// pidfile, state directory and log. Commands that would change the host
// (shutdown, clock, suspend, passwords, ...) are disabled with `-b`. Plain
// fork/exec: the agent layer must not depend on the process layer. Killed
// and reaped on destruction.
#pragma once

#include <localvm/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace localvm::test {

/// Where Debian installs the agent.
inline const char* qemu_ga_path() {
    return "/usr/sbin/qemu-ga";
}

class agent_process {
public:
    /// Commands disabled on the host: they would act on this machine.
    static constexpr const char* blocked =
        "guest-shutdown,guest-set-time,guest-suspend-disk,guest-suspend-ram,"
        "guest-suspend-hybrid,guest-set-user-password,guest-set-vcpus,guest-set-memory-blocks,"
        "guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw,guest-fstrim,"
        "guest-ssh-add-authorized-keys,guest-ssh-remove-authorized-keys";

    agent_process() {
        char tmpl[] = "/tmp/localvm-qga-XXXXXX";
        if (!::mkdtemp(tmpl))
            throw_error(errc::io_error, "mkdtemp failed");
        dir_ = tmpl;
        socket_ = dir_ + "/qga.sock";
        inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (inotify_ < 0 || ::inotify_add_watch(inotify_, dir_.c_str(), IN_CREATE) < 0)
            throw_error(errc::io_error, "inotify failed");
        std::vector<std::string> argv = {
            qemu_ga_path(), "-m", "unix-listen",     "-p", socket_, "-f", dir_ + "/qga.pid", "-t",
            dir_,           "-l", dir_ + "/qga.log", "-b", blocked};
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
            ::execv(args[0], args.data());
            ::_exit(127);
        }
    }

    agent_process(const agent_process&) = delete;
    agent_process& operator=(const agent_process&) = delete;

    ~agent_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        if (inotify_ >= 0)
            ::close(inotify_);
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    const std::string& socket() const { return socket_; }
    const std::string& dir() const { return dir_; }

    /// The agent's log so far (for failure messages).
    std::string log() const {
        std::ifstream in(dir_ + "/qga.log");
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

    /// Waits (on inotify) until the agent created its socket, then until a
    /// connect is accepted (bind and listen are two steps).
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
        while (!std::filesystem::exists(socket_)) {
            boost::system::error_code ec;
            co_await d.async_wait(boost::asio::posix::descriptor_base::wait_read,
                                  boost::asio::redirect_error(boost::asio::use_awaitable, ec));
            if (*timed_out)
                throw_error(errc::timeout, "qemu-ga did not create " + socket_ + "; log: " + log());
            std::array<char, 4096> buf;
            while (::read(inotify_, buf.data(), buf.size()) > 0) {
            }
        }
        while (!listening(socket_)) {
            if (*timed_out)
                throw_error(errc::timeout, "qemu-ga did not listen on " + socket_);
            co_await boost::asio::post(ex, boost::asio::use_awaitable);
        }
        t.cancel();
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
    std::string socket_;
    int inotify_ = -1;
    pid_t pid_ = -1;
};

} // namespace localvm::test
