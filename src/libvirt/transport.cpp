#include "transport.hpp"

#include <localvm/error.hpp>
#include <localvm/ssh/command.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstdlib>

#include "detail/unix_connect.hpp"
#include "ssh/argv.hpp"
#include "sys/errno.hpp"
#include <sys/socket.h>
#include <unistd.h>

namespace localvm::libvirt::detail {

namespace asio = boost::asio;
using boost::system::error_code;

std::string ssh_status::text() const {
    std::string out;
    for (const auto& l : err_tail)
        out += (out.empty() ? "" : " | ") + l;
    if (exited)
        out += (out.empty() ? "ssh " : " (ssh ") + how + (out.starts_with("ssh ") ? "" : ")");
    return out.empty() ? out : "ssh: " + out;
}

namespace {

// The URI's ssh fields, unchecked.
std::optional<ssh::jump_host> hop_fields(const uri& u, std::chrono::seconds connect_timeout,
                                         std::string& problem) {
    if (u.keyfile.empty()) {
        problem = "an ssh URI needs keyfile=PATH (the private key to log in with)";
        return std::nullopt;
    }
    ssh::jump_host j;
    j.host = u.host;
    j.port = u.port ? u.port : 22;
    j.user = u.user;
    j.identity_file = u.keyfile;
    if (!u.known_hosts.empty()) {
        j.known_hosts_file = u.known_hosts;
    } else {
        const char* home = std::getenv("HOME");
        if (!home || !*home) {
            problem = "an ssh URI needs known_hosts=PATH when $HOME is not set";
            return std::nullopt;
        }
        j.known_hosts_file = std::string(home) + "/.ssh/known_hosts";
    }
    j.connect_timeout = connect_timeout;
    return j;
}

} // namespace

std::optional<ssh::jump_host> ssh_hop(const uri& u, std::chrono::seconds connect_timeout,
                                      std::string& problem) {
    auto j = hop_fields(u, connect_timeout, problem);
    if (!j)
        return j;
    // Checked as the hop of a target (the same rules as a direct target).
    ssh::target probe;
    probe.port = 1;
    probe.identity_file = "/k";
    probe.known_hosts_file = "/k";
    probe.jump = *j;
    if (auto p = ssh::detail::target_problem(probe); !p.empty()) {
        problem = p;
        return std::nullopt;
    }
    return j;
}

std::vector<std::string> ssh_command(const uri& u, std::chrono::seconds connect_timeout,
                                     std::string& problem) {
    auto hop = hop_fields(u, connect_timeout, problem);
    if (!hop)
        return {};
    ssh::target t;
    t.host = hop->host;
    t.port = hop->port;
    t.user = hop->user;
    t.identity_file = hop->identity_file;
    t.known_hosts_file = hop->known_hosts_file;
    t.connect_timeout = connect_timeout;
    if (auto p = ssh::detail::target_problem(t); !p.empty()) {
        problem = p;
        return {};
    }
    const std::string socket = u.socket_path();
    std::vector<std::string> remote;
    if (u.proxy == ssh_proxy::netcat || (u.proxy == ssh_proxy::automatic && !u.socket.empty()))
        remote = {u.netcat, "-U", socket};
    else if (u.proxy == ssh_proxy::native)
        remote = {"virt-ssh-helper", u.name()};
    else
        remote = {
            "sh",
            "-c",
            "if command -v virt-ssh-helper >/dev/null 2>&1; then exec virt-ssh-helper \"$1\"; "
            "else exec \"$2\" -U \"$3\"; fi",
            "sh",
            u.name(),
            u.netcat,
            socket};
    return ssh::ssh_argv(t, ssh::shell_join(remote), false);
}

namespace {

asio::awaitable<transport> open_unix(const uri& u) {
    transport t(co_await asio::this_coro::executor);
    t.where = u.socket_path();
    if (t.where.empty())
        throw localvm::error(
            errc::invalid_argument,
            "libvirt session socket: XDG_RUNTIME_DIR is not set; give socket=PATH");
    co_await localvm::detail::connect_unix(t.socket, t.where, "libvirt socket",
                                           errc::libvirt_closed);
    co_return t;
}

asio::awaitable<transport> open_ssh(const uri& u, std::chrono::seconds connect_timeout) {
    auto ex = co_await asio::this_coro::executor;
    std::string problem;
    auto argv = ssh_command(u, connect_timeout, problem);
    if (argv.empty())
        throw localvm::error(errc::invalid_argument, "libvirt URI: " + problem);
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        sys::throw_errno(errc::io_error, "socketpair for ssh", errno);
    transport t(ex);
    t.socket.assign(asio::local::stream_protocol(), fds[0]);
    t.where = "ssh " + (u.user.empty() ? "" : u.user + "@") + u.host +
              (u.port ? ":" + std::to_string(u.port) : "");
    t.status = std::make_shared<ssh_status>();
    process::options o;
    o.argv = std::move(argv);
    o.stdin_mode = process::input_mode::inherit;
    o.stdin_fd = fds[1];
    o.out.mode = process::stream_mode::inherit;
    o.out.inherit_fd = fds[1];
    o.err.mode = process::stream_mode::sink;
    o.new_session = true;
    o.kill_grace = std::chrono::milliseconds(1000);
    std::weak_ptr<ssh_status> weak_status = t.status;
    o.err.sink = [weak_status](std::string_view line) {
        if (auto s = weak_status.lock()) {
            s->err_tail.emplace_back(line);
            if (s->err_tail.size() > 20)
                s->err_tail.pop_front();
        }
    };
    try {
        t.ssh = std::make_shared<process::child>(ex, std::move(o));
    } catch (...) {
        ::close(fds[1]);
        throw;
    }
    ::close(fds[1]); // the child has its own copies
    // Reap ssh (and drain its stderr) whenever it exits; the coroutine owns
    // the child until then.
    asio::co_spawn(
        ex,
        [child = t.ssh, weak_status]() -> asio::awaitable<void> {
            auto r = co_await child->wait();
            if (auto s = weak_status.lock()) {
                s->exited = true;
                s->how = r.describe();
            }
        },
        [](std::exception_ptr) {}); // a kill on cancellation is the expected end
    co_return t;
}

} // namespace

asio::awaitable<transport> open_transport(const uri& u, std::chrono::seconds connect_timeout) {
    if (u.transport == transport_kind::ssh)
        co_return co_await open_ssh(u, connect_timeout);
    co_return co_await open_unix(u);
}

} // namespace localvm::libvirt::detail
