#include "guest_ssh.hpp"

#include <localvm/error.hpp>
#include <localvm/ssh/keygen.hpp>
#include <localvm/ssh/master.hpp>

#include <algorithm>

#include "detail/await.hpp"
#include "sys/file.hpp"

namespace localvm::qemu::detail {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

std::string read_key_file(const fs::path& p) {
    auto text = sys::read_file(p);
    if (text.empty())
        throw_error(errc::io_error, "cannot read the SSH host key " + p.string());
    return text;
}

} // namespace

ssh::target guest_ssh_target(const options& o, const layout& l, const port_forward& fwd) {
    ssh::target t;
    t.host = fwd.host_address == "0.0.0.0" ? "127.0.0.1" : fwd.host_address;
    t.port = fwd.host_port;
    t.user = o.ssh_user;
    t.identity_file = o.ssh_identity_file;
    t.known_hosts_file = l.known_hosts;
    if (o.host_key == host_key_policy::pinned) {
        // Only a master made with the VM's own pinned key is shared: one
        // made under first-use trust (by another manager of the same VM)
        // would let a pinned target's calls skip the key check.
        t.control_path = l.ssh_control;
        auto pub = l.host_key;
        pub += ".pub";
        if (!fs::exists(pub))
            throw_error(errc::not_found,
                        "VM " + o.name + " has no pinned SSH host key (" + pub.string() +
                            "): it was started without one; start it again, or use "
                            "host_key_policy::trust_on_first_use");
        auto line = read_key_file(pub);
        line.erase(line.find_last_not_of("\r\n") + 1);
        t.known_host_keys = {line};
    }
    return t;
}

asio::awaitable<cloudinit::ssh_host_key> guest_host_key(const options& o, const layout& l) {
    cloudinit::ssh_host_key key;
    key.public_key = co_await ssh::ensure_key_pair(l.host_key, "localvm-host-" + o.name);
    key.private_key = read_key_file(l.host_key);
    co_return key;
}

asio::awaitable<void> wait_guest_ssh(const options& o, ssh::target t, milliseconds timeout,
                                     bool network_up, ssh::abort_hook abort, say_fn say,
                                     stage_sink stages) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    if (t.jump) {
        // The forward is on the jump host's loopback: every probe would be
        // an ssh to the jump host anyway, so the login is the probe.
        if (o.ssh_identity_file.empty())
            throw_error(errc::unsupported,
                        "VM " + o.name +
                            ": waiting for SSH through a jump host needs ssh_identity_file (the "
                            "readiness probe is a login there)");
        ssh::login_options lo;
        lo.timeout = timeout;
        co_await ssh::wait_for_login(std::move(t), lo, std::move(abort));
        if (say)
            say("ssh login works (through the jump host)");
        if (stages)
            stages(boot_stage::ssh_login, o.ssh_user);
        co_return;
    }
    ssh::probe_options po;
    po.timeout = timeout;
    po.network_up = network_up;
    auto banner = co_await ssh::wait_for_banner(t.host, t.port, po, abort);
    if (say)
        say("ssh answers: " + banner);
    if (stages)
        stages(boot_stage::ssh_banner, banner);
    if (o.ssh_identity_file.empty())
        co_return;
    ssh::login_options lo;
    lo.timeout = localvm::detail::time_left(deadline);
    co_await ssh::wait_for_login(std::move(t), lo, std::move(abort));
    if (say)
        say("ssh login works");
    if (stages)
        stages(boot_stage::ssh_login, o.ssh_user);
}

asio::awaitable<void> end_guest_master(const layout& l, say_fn say) {
    auto how = co_await ssh::end_master(l.ssh_control, ssh_master_timeout);
    if (!say)
        co_return;
    switch (how) {
    case ssh::master_end::none:
        break;
    case ssh::master_end::ended:
        say("ended the ssh control master");
        break;
    case ssh::master_end::stale:
        say("removed a stale ssh control socket");
        break;
    case ssh::master_end::left:
        say("the ssh control master at " + l.ssh_control.string() + " did not end");
        break;
    }
}

asio::awaitable<shell_result> guest_shell(ssh::target t, std::string command, shell_options opts) {
    co_return co_await ssh::shell(std::move(t), std::move(command), std::move(opts));
}

asio::awaitable<void> guest_sync(ssh::target t, fs::path from, std::string to, sync_options opts,
                                 line_sink output) {
    if (!opts.output)
        opts.output = std::move(output);
    co_await ssh::sync(std::move(t), from.string(), std::move(to), std::move(opts));
}

} // namespace localvm::qemu::detail
