// The guest's SSH as both backends reach it through a 127.0.0.1 forward:
// the ssh target with the pinned host key, the key pair itself, readiness,
// shell and sync. qemu::manager and libvirt::manager differ only in how
// they learn the forward's host port and whether the VM still runs.
#pragma once

#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/manager.hpp>
#include <localvm/qemu/options.hpp>
#include <localvm/qemu/stage.hpp>
#include <localvm/ssh/command.hpp>
#include <localvm/ssh/probe.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace localvm::qemu::detail {

/// The ssh target of the VM `o` (files `l`) whose guest port 22 is
/// forwarded at `fwd` (a forward on 0.0.0.0 is reached at 127.0.0.1): its
/// user and identity, its own known_hosts (`l.known_hosts`), and with
/// `host_key_policy::pinned` the key in `l.host_key`.pub (throws
/// `errc::not_found` when that is missing: the VM was started without one)
/// and its control master's socket (`l.ssh_control`: `wait_ready`'s login
/// leaves the master that `shell` and `sync` reuse; none under first-use
/// trust, whose master would serve pinned targets of the same VM unchecked).
ssh::target guest_ssh_target(const options& o, const layout& l, const port_forward& fwd);

/// The VM's pinned host key pair at `l.host_key` (made on first use, mode
/// 0600). Throws as `ssh::ensure_key_pair`, `errc::io_error` when it cannot
/// be read.
boost::asio::awaitable<cloudinit::ssh_host_key> guest_host_key(const options& o, const layout& l);

/// Says a progress line; the stage sink gets each readiness stage.
using say_fn = std::function<void(const std::string&)>;

/// `manager::wait_ready`'s body: the SSH banner at `t`, then, when
/// `o.ssh_identity_file` is set, a login; both within `timeout` and raced
/// against `abort` (`errc::guest_died`). `network_up`: the guest's network
/// is known to be up (a restored clone), see `ssh::probe_options`. Through a
/// jump host (`t.jump`: the forward is bound on that host's loopback) there
/// is no banner stage: logins through the jump host are the probe, and
/// without `o.ssh_identity_file` that is `errc::unsupported`. Throws as
/// `ssh::wait_for_banner` and `ssh::wait_for_login`.
boost::asio::awaitable<void> wait_guest_ssh(const options& o, ssh::target t,
                                            std::chrono::milliseconds timeout, bool network_up,
                                            ssh::abort_hook abort, say_fn say, stage_sink stages);

/// Ends the ssh control master of the VM with files `l` (`l.ssh_control`,
/// see `ssh::end_master`), best effort within `ssh_master_timeout`, and
/// says what it did when there was one. Before the guest goes down (stop, a save) and
/// when the VM's files go (remove): no master outlives its VM. Never throws
/// but bad_alloc; cancellation completes with operation_aborted.
boost::asio::awaitable<void> end_guest_master(const layout& l, say_fn say);

/// How long `end_guest_master` waits for the master to exit when asked: one
/// that takes longer (a hung connection) is then signalled (see
/// `ssh::end_master`).
inline constexpr std::chrono::milliseconds ssh_master_timeout{2000};

/// `manager::shell`'s body at `t`.
boost::asio::awaitable<shell_result> guest_shell(ssh::target t, std::string command,
                                                 shell_options opts);

/// `manager::sync`'s body at `t`; rsync's progress goes to `opts.output`,
/// or when that is unset to `output` (the manager's sink).
boost::asio::awaitable<void> guest_sync(ssh::target t, std::filesystem::path from, std::string to,
                                        sync_options opts, line_sink output);

} // namespace localvm::qemu::detail
