// A private libvirtd for tests and benchmarks, never the system's.
//
// It runs as root in its own mount and PID namespaces (unshare): a tmpfs on
// /run and bind mounts of a temp dir over /etc/libvirt, /var/lib/libvirt and
// /var/log/libvirt, so it sees no system configuration, no default network
// and no other instance, and nothing it writes leaks out. Its sockets are in
// the temp dir (unix_sock_dir), auth none. /var/cache/libvirt is bound to
// ~/.cache/localvm/libvirt-cache, shared between runs: libvirt revalidates
// its QEMU capability cache against the binaries, and probing QEMU afresh
// costs minutes on a loaded machine. A shell is PID 1 of its namespace and
// waits for libvirtd, so when libvirtd dies every QEMU it started dies too; unshare --kill-child
// and setpriv --pdeathsig tie it to this process, so that even a crashed test leaves nothing
// behind. Readiness comes from libvirtd's own sd_notify (READY=1 on NOTIFY_SOCKET), not from
// polling.
#pragma once

#include <localvm/error.hpp>
#include <localvm/process/child.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/local/datagram_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace libvirt_test {

namespace fs = std::filesystem;

/// What a machine needs to run `private_libvirtd`; empty when all is there,
/// else what is missing (the caller skips with exit 77).
inline std::string missing_tools() {
    if (::geteuid() != 0)
        return "not root (a private libvirtd runs QEMU as root)";
    for (const char* tool : {"/usr/sbin/libvirtd", "/usr/bin/qemu-system-x86_64",
                             "/usr/bin/unshare", "/usr/bin/setpriv"})
        if (!fs::exists(tool))
            return std::string(tool) + " is not installed";
    return {};
}

class private_libvirtd {
public:
    /// Makes the temp dir and configuration; `start` runs the daemon.
    /// `extra_conf`: lines appended to its libvirtd.conf (e.g. a benchmark's
    /// "max_client_requests = 16").
    explicit private_libvirtd(const std::string& extra_conf = {}) {
        char tmpl[] = "/tmp/localvm-libvirtd.XXXXXX";
        if (!::mkdtemp(tmpl))
            throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        for (auto d : {"etc/storage/autostart", "lib", "log", "sock", "pool"})
            fs::create_directories(dir_ / d);
        const char* home = std::getenv("HOME");
        cache_ = fs::path(home && *home ? home : "/root") / ".cache/localvm/libvirt-cache";
        fs::create_directories(cache_);
        std::ofstream(dir_ / "etc/libvirtd.conf")
            << "unix_sock_dir = \"" << (dir_ / "sock").string() << "\"\n"
            << "unix_sock_rw_perms = \"0700\"\n"
            << "auth_unix_ro = \"none\"\nauth_unix_rw = \"none\"\n"
            << "listen_tls = 0\nlisten_tcp = 0\n"
            << "log_outputs = \"3:stderr\"\n"
            << extra_conf;
        // root without confinement or cgroups (a container may have
        // neither); QEMU's stdio to files: no virtlogd to start.
        std::ofstream(dir_ / "etc/qemu.conf") << "user = \"root\"\ngroup = \"root\"\n"
                                              << "security_driver = \"none\"\n"
                                              << "cgroup_controllers = [ ]\n"
                                              << "namespaces = [ ]\n"
                                              << "stdio_handler = \"file\"\n"
                                              << "remember_owner = 0\n";
        // A directory pool, started by the daemon itself.
        const std::string pool = "<pool type='dir'><name>localvm-test</name><target><path>" +
                                 (dir_ / "pool").string() + "</path></target></pool>\n";
        std::ofstream(dir_ / "etc/storage/localvm-test.xml") << pool;
        fs::create_symlink(dir_ / "etc/storage/localvm-test.xml",
                           dir_ / "etc/storage/autostart/localvm-test.xml");
        std::ofstream(dir_ / "run.sh")
            << "set -e\n"
            << "mount -t tmpfs -o mode=0755 tmpfs /run\n"
            << "mkdir -p /run/libvirt /run/lock\n" // console locks: /var/lock -> /run/lock
            // The mount points: libvirt-daemon without -system does not make
            // them (a fresh machine has none of the three).
            << "mkdir -p /var/lib/libvirt /var/log/libvirt /var/cache/libvirt\n"
            // The QEMU driver looks up its built-in user and group
            // (libvirt-qemu, kvm) before it reads qemu.conf's user = "root"
            // and fails without them; libvirt-daemon-system would add them,
            // with a system daemon and a NAT network we do not want. Inside
            // the namespace only, passwd and group get the two entries.
            << "d='" << dir_.string() << "'\n"
            << "cp /etc/passwd \"$d/passwd\"; cp /etc/group \"$d/group\"\n"
            << "getent passwd libvirt-qemu >/dev/null || echo "
               "'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin' >>\"$d/passwd\"\n"
            << "getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >>\"$d/group\"\n"
            << "getent group kvm >/dev/null || echo 'kvm:x:64056:' >>\"$d/group\"\n"
            << "mount --bind \"$d/passwd\" /etc/passwd\n"
            << "mount --bind \"$d/group\" /etc/group\n"
            << "mount --bind '" << (dir_ / "etc").string() << "' /etc/libvirt\n"
            << "mount --bind '" << (dir_ / "lib").string() << "' /var/lib/libvirt\n"
            << "mount --bind '" << (dir_ / "log").string() << "' /var/log/libvirt\n"
            << "mount --bind '" << cache_.string()
            << "' /var/cache/libvirt\n"
            // sh stays PID 1 and reaps the QEMUs that daemonize away from
            // libvirtd (libvirtd as PID 1 would not, and destroy would wait
            // 40 s for each zombie); when libvirtd ends, sh ends, and with
            // PID 1 every process of the namespace.
            << "/usr/sbin/libvirtd --config /etc/libvirt/libvirtd.conf &\n"
            << "wait $!\n";
    }

    ~private_libvirtd() {
        kill();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    /// Starts libvirtd and waits (at most `timeout`) for its READY=1.
    boost::asio::awaitable<void> start(std::chrono::steady_clock::duration timeout) {
        namespace asio = boost::asio;
        using namespace asio::experimental::awaitable_operators;
        auto ex = co_await asio::this_coro::executor;
        const auto notify_path = (dir_ / "notify").string();
        asio::local::datagram_protocol::socket notify(
            ex, asio::local::datagram_protocol::endpoint(notify_path));
        localvm::process::options o;
        o.argv = {"/usr/bin/setpriv",
                  "--pdeathsig",
                  "KILL",
                  "--",
                  "/usr/bin/unshare",
                  "--mount",
                  "--propagation",
                  "private",
                  "--pid",
                  "--fork",
                  "--kill-child",
                  "--mount-proc",
                  "/bin/sh",
                  (dir_ / "run.sh").string()};
        o.env_overrides = {"NOTIFY_SOCKET=" + notify_path};
        o.out.mode = localvm::process::stream_mode::null;
        o.err.mode = localvm::process::stream_mode::sink;
        auto tail = std::make_shared<std::string>(); // for a start that fails
        o.err.sink = [tail](std::string_view line) {
            tail->append(line).append("\n");
            if (tail->size() > 4096)
                tail->erase(0, tail->size() - 4096);
            // Its warnings about what a container lacks (dmidecode, udev, dbus)
            // are expected; errors beyond those go to the test log.
            if (line.find("error") != std::string_view::npos &&
                line.find("dmidecode") == std::string_view::npos &&
                line.find("udev") == std::string_view::npos &&
                line.find("dnsmasq") == std::string_view::npos &&
                line.find("system bus") == std::string_view::npos)
                std::cerr << "libvirtd: " << line << "\n";
        };
        o.new_session = true;
        proc_ = std::make_unique<localvm::process::child>(ex, std::move(o));
        char buf[512];
        std::string got;
        asio::steady_timer t(ex, timeout);
        while (got.find("READY=1") == std::string::npos) {
            auto r = co_await (notify.async_receive(asio::buffer(buf), asio::use_awaitable) ||
                               t.async_wait(asio::use_awaitable));
            if (r.index() == 1)
                throw localvm::error(localvm::errc::timeout,
                                     "libvirtd did not report READY=1; its stderr ended with:\n" +
                                         *tail);
            got.append(buf, std::get<0>(r));
        }
    }

    /// Kills libvirtd and with it every QEMU of its namespace (SIGKILL to
    /// unshare, whose --kill-child then kills the namespace's PID 1).
    void kill() noexcept {
        if (proc_)
            proc_->signal(SIGKILL);
    }

    /// Awaits the daemon's end after `kill`.
    boost::asio::awaitable<void> reap() {
        if (proc_)
            co_await proc_->wait();
    }

    std::string socket() const { return (dir_ / "sock/libvirt-sock").string(); }
    std::string uri() const { return "qemu+unix:///system?socket=" + socket(); }
    const fs::path& dir() const { return dir_; }
    fs::path pool_dir() const { return dir_ / "pool"; }

private:
    fs::path dir_, cache_;
    std::unique_ptr<localvm::process::child> proc_;
};

} // namespace libvirt_test
