// An sshd on 127.0.0.1 in front of a private libvirtd (private_libvirtd.hpp),
// so that tests reach that daemon through `qemu+ssh://root@127.0.0.1:PORT/
// system?...` as they would reach a remote host.
//
// sshd runs in a mount namespace of its own, where a tmpfs on /run holds
// its privilege separation directory and the system socket's path,
// /run/libvirt/libvirt-sock, as a symbolic link to the private daemon's
// socket: a URI without socket= then reaches the private daemon the way it
// would reach a system one (virt-ssh-helper qemu:///system, or nc -U on the
// default path), and nothing of the host's /run is touched. setpriv ties
// sshd to this process: it dies with it, however it ends.
#pragma once

#include <localvm/process/child.hpp>
#include <localvm/ssh/probe.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "private_libvirtd.hpp"

namespace libvirt_test {

/// What `loopback_sshd` needs beyond `private_libvirtd`; empty when all is there.
inline std::string missing_ssh_tools() {
    for (const char* tool :
         {"/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/nc", "/usr/bin/ssh-keygen"})
        if (!fs::exists(tool))
            return std::string(tool) + " is not installed";
    return {};
}

class loopback_sshd {
public:
    /// Keys, sshd_config and known_hosts in `daemon.dir()`; `start` runs sshd.
    explicit loopback_sshd(const private_libvirtd& daemon)
        : daemon_(daemon)
        , key_(daemon.dir() / "id_test")
        , host_key_(daemon.dir() / "host_key")
        , known_hosts_(daemon.dir() / "known_hosts")
        , config_(daemon.dir() / "sshd_config") {}

    /// Makes the keys (once) and starts sshd on a free loopback port; returns
    /// once it sends its banner. Idempotent.
    boost::asio::awaitable<void> start() {
        if (sshd_)
            co_return;
        if (!fs::exists(key_))
            co_await keygen(key_);
        if (!fs::exists(host_key_))
            co_await keygen(host_key_);
        fs::copy_file(key_.string() + ".pub", daemon_.dir() / "authorized_keys",
                      fs::copy_options::overwrite_existing);
        std::ofstream(config_) << "HostKey " << host_key_.string() << "\n"
                               << "AuthorizedKeysFile "
                               << (daemon_.dir() / "authorized_keys").string() << "\n"
                               << "PidFile none\nStrictModes no\nUsePAM no\n"
                               << "PermitRootLogin prohibit-password\n"
                               << "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                               << "LogLevel ERROR\n";
        port_ = free_port();
        std::ofstream(known_hosts_)
            << "[127.0.0.1]:" << port_ << " " << read(host_key_.string() + ".pub");
        localvm::process::options o;
        o.argv = {
            "/usr/bin/setpriv",
            "--pdeathsig",
            "KILL",
            "--",
            "/usr/bin/unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            "set -e; mount -t tmpfs -o mode=0755 tmpfs /run; mkdir -p /run/sshd /run/libvirt; "
            "ln -s \"$1\" /run/libvirt/libvirt-sock; shift; exec \"$@\"",
            "sh",
            daemon_.socket(),
            "/usr/sbin/sshd",
            "-D",
            "-e",
            "-f",
            config_.string(),
            "-o",
            "Port=" + std::to_string(port_),
            "-o",
            "ListenAddress=127.0.0.1"};
        o.out.mode = localvm::process::stream_mode::null;
        o.err.mode = localvm::process::stream_mode::inherit;
        sshd_ = std::make_unique<localvm::process::child>(co_await boost::asio::this_coro::executor,
                                                          std::move(o));
        co_await localvm::ssh::wait_for_banner("127.0.0.1", port_);
    }

    /// `qemu+ssh://root@127.0.0.1:PORT/system?keyfile=...&known_hosts=...`:
    /// the remote route libvirt's own client takes (no socket=).
    std::string remote_uri() const {
        return "qemu+ssh://root@127.0.0.1:" + std::to_string(port_) +
               "/system?keyfile=" + key_.string() + "&known_hosts=" + known_hosts_.string();
    }
    /// `remote_uri()` with socket= the private daemon's: `nc -U` on the far side.
    std::string uri() const { return remote_uri() + "&socket=" + daemon_.socket(); }

    const fs::path& key() const { return key_; }
    std::uint16_t port() const { return port_; }

    /// An ed25519 key pair at `path` (and `.pub`), no passphrase.
    static boost::asio::awaitable<void> keygen(fs::path path) {
        localvm::process::options o;
        o.argv = {"ssh-keygen", "-q", "-t",           "ed25519", "-N",
                  "",           "-C", "localvm-test", "-f",      path.string()};
        co_await localvm::process::run_checked(std::move(o));
    }

private:
    static std::uint16_t free_port() {
        boost::asio::io_context ctx;
        boost::asio::ip::tcp::acceptor a(ctx, {boost::asio::ip::make_address("127.0.0.1"), 0});
        return a.local_endpoint().port();
    }
    static std::string read(const fs::path& p) {
        std::ifstream f(p, std::ios::binary);
        std::stringstream s;
        s << f.rdbuf();
        return s.str();
    }

    const private_libvirtd& daemon_;
    fs::path key_, host_key_, known_hosts_, config_;
    std::uint16_t port_ = 0;
    std::unique_ptr<localvm::process::child> sshd_;
};

} // namespace libvirt_test
