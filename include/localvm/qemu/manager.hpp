// The QEMU backend: one VM's lifecycle on the caller's io_context.
#pragma once

#include <localvm/console/serial.hpp>
#include <localvm/manager.hpp>
#include <localvm/qemu/agent.hpp>
#include <localvm/qemu/options.hpp>
#include <localvm/qemu/snapshot.hpp>
#include <localvm/qemu/stage.hpp>
#include <localvm/qemu/state.hpp>
#include <localvm/qga/client.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace localvm::qemu {

/// A snapshot of one VM for status displays.
struct status {
    bool exists = false;           ///< The disk overlay exists.
    bool running = false;          ///< QEMU runs (its pid file lock is held).
    std::optional<pid_t> pid;      ///< QEMU's pid while running.
    std::optional<vm_state> state; ///< The state file, with `last_end` brought up to date.
    /// QEMU runs with a human monitor (it was started with
    /// `start_options::monitor`): `attach_monitor` can reach it on
    /// `manager::files().monitor_socket`.
    bool monitor = false;
};

/// Manages one VM named `options::name` with QEMU. Every lifecycle call is
/// an awaitable on the executor given at construction; the object keeps no
/// connection between calls, so any number of processes may manage the same
/// VM at once: create/start/stop/remove are serialised by a lock file, and
/// `running`/`pid` read QEMU's own pid file lock (safe against stale files
/// and pid reuse). The VM outlives this object and this process.
class manager final : public localvm::manager {
public:
    /// Validates `opts` (throws `errc::invalid_argument` naming the problem);
    /// touches no file.
    manager(boost::asio::any_io_executor executor, options opts);

    std::string addr() const override;         ///< "10.0.2.2" (user-mode networking).
    void set_output(line_sink sink) override;  ///< Lifecycle messages and QEMU's stderr.
    /// Where `start` and `wait_ready` report each `boot_stage` as it
    /// happens (for progress displays and boot timelines). Default: nowhere.
    void set_stage_sink(stage_sink sink);

    /// `qemu-img create -f qcow2 -F <format of base> -b <base>` into a
    /// temporary name, renamed into place (mode 0600) on success (see
    /// localvm::manager). The base is read with `qemu-img info` under
    /// resource limits (util-linux `prlimit`); a base that makes QEMU open
    /// other files (a backing file, an external data file, vmdk extents
    /// elsewhere) is `errc::unsupported` unless
    /// `options::allow_base_backing_chain`. The VM's directories are made
    /// and checked first (`make_directories`).
    boost::asio::awaitable<void> create(std::filesystem::path base_image) override;
    boost::asio::awaitable<bool> exists() override;

    /// Writes the seed (instance-id derived from the name, user-data and
    /// key, so changed user-data makes cloud-init run again; with
    /// `host_key_policy::pinned`, also from the VM's host key, which is made
    /// on the first start and goes in the seed's vendor-data), spawns QEMU
    /// detached and paused, connects QMP, reads the bound forward ports,
    /// records the state, continues the guest and returns. Each of
    /// `start_options::networks` is joined first (`virtual_network::join`:
    /// the network must exist, the address must be free; its switch starts
    /// if needed) and becomes a virtio NIC (QEMU id `vnicN`) with the
    /// seed's network-config (matched by MAC) and /etc/hosts lines (see
    /// `virtual_network`). With
    /// `accelerator::automatic` choosing KVM, it then waits up to
    /// `options::kvm_watchdog` for console output and restarts under TCG
    /// when none comes or QEMU's error names KVM (see accel.hpp). Every QMP
    /// command gets what is left of `options::start_timeout` (a silent
    /// monitor: `errc::timeout` naming the command). A failure, cancellation
    /// or a throwing stage sink kills the QEMU it spawned (waiting for it on
    /// the io_context, at most 5 s) and throws (see localvm::manager); the
    /// death of this process before `start` returns kills it too (QEMU's
    /// supervisor does it: see `process::detached_process`).
    boost::asio::awaitable<void> start(start_options opts) override;

    /// `start`, then `wait_ready(timeout)` (SSH), in one call, with one
    /// difference for a clone's first start (a restore): its guest clock is
    /// set through the agent while SSH comes up instead of before `start`
    /// returns (both wait on a guest that TCG runs slowly right after a
    /// restore); `boot_stage::guest_clock` may then come after
    /// `ssh_banner`, and the call returns once both are done. Throws what
    /// `start` throws (nothing left running), then what `wait_ready`
    /// throws (the VM keeps running, as after the two calls). Cancellation
    /// during the wait stops waiting and leaves the VM running.
    boost::asio::awaitable<void> start_and_wait_ready(start_options opts,
                                                      std::chrono::milliseconds timeout);

    boost::asio::awaitable<bool> running() override;
    boost::asio::awaitable<std::optional<pid_t>> pid() override;

    /// Waits for the SSH banner on the forward to guest port 22, then (when
    /// `options::ssh_identity_file` is set) for a real login. Throws
    /// `errc::not_running`, `errc::invalid_argument` when no forward goes
    /// to port 22, `errc::guest_died` with the console tail when QEMU exits,
    /// `errc::ssh_unreachable` after `timeout`, or at once when the guest's
    /// host key is not the pinned one ("did not match the pinned host key";
    /// see `host_key_policy`), `errc::not_found` when the VM is pinned but
    /// was started without a host key.
    boost::asio::awaitable<void> wait_ready(std::chrono::milliseconds timeout) override;

    /// `wait_ready` by `mode`: `ready_mode::ssh` is the call above;
    /// `ready_mode::agent` waits until the guest agent answers `guest-ping`
    /// on the VM's agent channel (no forward or sshd needed: a guest whose
    /// sshd is off can be ready); `ready_mode::both` waits for SSH, then the
    /// agent, within the one `timeout`. Throws as above, and for the agent
    /// `errc::timeout` saying it never answered (no qemu-guest-agent in the
    /// guest?), `errc::guest_died` with the console tail when QEMU exits.
    /// Cancellation: stops waiting; nothing is left open.
    boost::asio::awaitable<void> wait_ready(std::chrono::milliseconds timeout, ready_mode mode);

    /// Runs `argv` in the guest through the guest agent (`guest-exec`: no
    /// shell, `argv[0]` looked up in the agent's PATH; as the agent's user,
    /// root) and returns its exit status, stdout and stderr, each whole.
    /// `opts.input` is its stdin, `opts.env` its environment. Needs
    /// qemu-guest-agent in the guest (see `wait_ready` with
    /// `ready_mode::agent`), not its network or sshd.
    /// When `opts.timeout` passes, or the call is cancelled, the program is
    /// killed: `kill -9 PID` run through `guest-exec` (the agent has no kill
    /// command; only that process, not ones it started), then its status is
    /// collected so the agent forgets it; then `errc::timeout` naming the
    /// program, its guest pid and whether the kill worked (or
    /// `operation_aborted`) is thrown. A cancellation during the first
    /// request (`guest-exec` itself) may leave the program running.
    /// Throws `errc::not_running`, `errc::invalid_argument` for an empty
    /// `argv`, `errc::timeout` naming the agent request when the agent does
    /// not answer (30 s per request), `errc::qmp_error` with the agent's
    /// text (e.g. a program that does not exist). Each call connects to the
    /// agent's channel for its duration; QEMU serves one client at a time,
    /// so overlapping calls (from any process) run one after another.
    boost::asio::awaitable<exec_result> exec(std::vector<std::string> argv,
                                             exec_options opts = exec_options());

    /// Copies host file `from` to guest path `to` (absolute) through the
    /// guest agent, `opts.chunk_size` bytes per request (never the whole
    /// file in memory). It is written to a temporary file beside `to`, then
    /// given the host file's permission bits (`chmod`, through `guest-exec`:
    /// the agent's file API has no modes) and renamed over `to` (`mv -T`):
    /// `to` is the old file or the new one, never a part. The new file is
    /// owned by the agent's user (root). A failure, timeout or cancellation
    /// removes the temporary file. Throws `errc::not_running`,
    /// `errc::not_found` for a missing host file or guest directory,
    /// `errc::invalid_argument` for a host path that is no regular file, a
    /// guest path not absolute or ending in '/', a bad chunk size,
    /// `errc::io_error` when the guest cannot write or rename (its text),
    /// `errc::timeout` after `opts.timeout`, the agent's errors as `exec`.
    boost::asio::awaitable<void> copy_in(std::filesystem::path from, std::string to,
                                         copy_options opts = copy_options());

    /// Copies guest file `from` (absolute) to host path `to` through the
    /// guest agent, chunk by chunk, into a temporary file beside `to` that
    /// takes the guest file's permission bits (its `stat`, through
    /// `guest-exec`) and is renamed over `to` once complete (see
    /// `atomic_file`): a failure, timeout or cancellation leaves `to` as it
    /// was. Throws `errc::not_running`, `errc::not_found` naming a guest
    /// file that does not exist, `errc::invalid_argument` for a guest path
    /// that is not a regular file (a directory), `errc::io_error` for the
    /// host side (naming the path and errno's text), `errc::timeout` after
    /// `opts.timeout`, the agent's errors as `exec`.
    boost::asio::awaitable<void> copy_out(std::string from, std::filesystem::path to,
                                          copy_options opts = copy_options());

    /// A client connected to the VM's guest agent channel
    /// (`files().agent_socket`), for the agent commands the calls above do
    /// not wrap (`set_time`, `network_interfaces`, ...). QEMU serves one
    /// client at a time: while it is open, `exec`, `copy_in`, `copy_out`,
    /// agent readiness and stop's agent step of any process wait for it
    /// (close or destroy it soon). Throws `errc::not_running`, and the
    /// errors of `qga::client::connect` (`errc::timeout` after
    /// `connect_timeout`).
    boost::asio::awaitable<qga::client> agent(std::chrono::milliseconds connect_timeout =
                                                  std::chrono::seconds(10));

    boost::asio::awaitable<shell_result> shell(std::string command, shell_options opts) override;
    /// Attaches stdin/stdout (see `attach_console`) with the usual hint.
    boost::asio::awaitable<void> console() override;
    /// Attaches the terminal (or any fds) in `opts` to the serial console
    /// until Ctrl-] (or `opts.escape`), end of input, or the VM stopping.
    /// Throws `errc::not_running`.
    boost::asio::awaitable<console::attach_end> attach_console(console::attach_options opts);

    /// Attaches the terminal (or any fds) in `opts` to QEMU's human monitor
    /// (HMP, the `(qemu)` prompt: `info status`, `info registers`, `sendkey`,
    /// ...), exactly as `attach_console` does for the serial console: raw
    /// mode, Ctrl-] (or `opts.escape`) detaches and restores the terminal,
    /// and QEMU keeps running. The monitor exists when the VM was started
    /// with `start_options::monitor` (a unix socket `files().monitor_socket`
    /// in the runtime directory), so any process can attach, one at a time:
    /// QEMU serves one client, and a second waits silently until the first
    /// detaches. Typing `quit` there ends QEMU (recorded as a guest
    /// shutdown); `stop` is the orderly way. QMP stays the library's own
    /// channel and is unaffected.
    /// Throws `errc::not_running` when the VM does not run,
    /// `errc::unsupported` when it was started without a monitor, and the
    /// errors of `console::attach` (`opts.endpoint` is set to "QEMU
    /// monitor"). Cancellation detaches and restores the terminal.
    boost::asio::awaitable<console::attach_end> attach_monitor(console::attach_options opts);
    boost::asio::awaitable<void> sync(std::filesystem::path from, std::string to,
                                      sync_options opts) override;

    /// Escalates `system_powerdown` (pressed again every
    /// `stop_options::powerdown_repeat` within `powerdown_timeout`) -> the
    /// guest agent's `guest-shutdown` (when the guest ignored the button:
    /// `stop_options::agent_timeout`) -> `quit`
    /// -> SIGTERM -> SIGKILL with the timeouts in `options::stop`; each QMP
    /// command is bounded by its step's timeout, and signals go through one
    /// pidfd taken at the beginning (never to a process that reused the pid).
    /// Records `end_reason::stopped` and the step that ended QEMU
    /// (`vm_state::stopped_by`), and removes the sockets and pid file (logs
    /// and state stay for diagnosis). Throws `errc::not_running`, and
    /// `errc::process_failed` when QEMU outlives SIGKILL.
    boost::asio::awaitable<void> stop() override;
    /// Deletes the VM's data and runtime directories. `errc::already_running`
    /// while QEMU runs: by its pid file, or, when the runtime directory was
    /// wiped under it, by the locks QEMU holds on the disk image. A symbolic
    /// link (or a directory not the caller's own) in place of either
    /// directory is `errc::unsupported`, and nothing is deleted.
    boost::asio::awaitable<void> remove() override;

    /// Saves the running VM as snapshot `name` (VM name rules) under
    /// `snapshot_root(config())`: pauses the guest, writes its machine state
    /// with QEMU's migration to a file the library opened (QMP `getfd`,
    /// `migrate` to `fd:`), copies the disk overlay (flushed and released
    /// by QEMU at that point) as the snapshot's read-only disk layer, along
    /// with the seed, UEFI variables and pinned host key (and the login key
    /// pair `options::ssh_identity_file` when it is the VM's own, a file in
    /// its data directory as the CLI keeps one), then resumes the
    /// guest (`after_save::resume`, the default: it runs on its own
    /// overlay, which the snapshot no longer shares) or quits QEMU
    /// (`after_save::stop`). The record (`snapshot_info`) pins the machine
    /// type to its versioned name (e.g. "pc-q35-7.2"), the QEMU version and
    /// the digests of the kernel, initrd or firmware. Everything is written
    /// under a temporary name and renamed whole. Throws
    /// `errc::invalid_argument` for a bad name, `errc::not_running`,
    /// `errc::already_exists`, `errc::process_failed` when the migration
    /// fails (e.g. a full disk), `errc::timeout` after `opts.timeout`,
    /// `errc::io_error`. A failed or cancelled save (cancellation throws
    /// `operation_aborted`) cancels the migration, resumes a guest that ran,
    /// and leaves no snapshot and no partial file.
    boost::asio::awaitable<snapshot_info> snapshot(std::string name,
                                                   snapshot_options opts = snapshot_options());

    /// Creates this VM as a clone of snapshot `snapshot` (found under
    /// `snapshot_root(config())`): its own qcow2 overlay on the snapshot's
    /// frozen disk layer, copies of the seed, UEFI variables and host key,
    /// the source's own login key pair at `options::ssh_identity_file` when
    /// the snapshot has one and that file is in this VM's data directory
    /// and does not exist yet (the guest authorises no other key),
    /// and a record of its origin; the snapshot counts it as a dependent
    /// until `remove`. Its first `start` restores the saved machine instead
    /// of booting (once the state is loaded the clone's disk is its own and
    /// may change, so every later `start` boots that disk cold, as any VM;
    /// to run from the snapshot again, make a new clone): QEMU starts with `-incoming defer` and the snapshot's
    /// pinned machine type, loads the state (`migrate-incoming` from a
    /// descriptor), binds the forwards of `start_options::ports` afresh
    /// (host port 0 picks a free one) and continues. The start options must
    /// describe the same machine (cpus, memory, the same kernel, initrd and
    /// command line, or firmware boot) and the files must be unchanged
    /// (digests) and the QEMU the same version, else `start` throws
    /// `errc::unsupported` naming each difference; `user_data` and
    /// `ssh_authorized_key` are not used again (the guest keeps what it
    /// had). The restored guest clock reads the time of the save: when the
    /// guest has an agent with its port open (QEMU says so right after
    /// `cont`), `start` sets the clock to the host's time through it
    /// (`guest-set-time`, within 10 s); without one the clock stays behind
    /// by the time since the save (set it yourself, e.g. with `shell`).
    /// Either way `start` does not fail for it: `boot_stage::guest_clock`
    /// and the output say what was done (a cancellation meanwhile ends the
    /// QEMU, as any cancelled `start`). `start_and_wait_ready` sets the
    /// clock while it waits for SSH. TCP connections open at the save
    /// are lost. Throws
    /// `errc::not_found` for no such snapshot, `errc::already_exists`,
    /// `errc::process_failed` when qemu-img fails; leaves nothing behind
    /// on failure.
    boost::asio::awaitable<void> create_from_snapshot(std::string snapshot);

    /// Running state, pid and the state file (how it last ended). When QEMU
    /// ended a moment ago, waits (at most 1 s) for its supervisor to record
    /// how.
    /// Sets the link of the VM's NIC on virtual network `network` up or
    /// down (QMP `set_link`: down, the guest sees carrier loss and no frame
    /// passes either way; for partition tests), recorded in the state file
    /// (`vm_state::nics`, shown by `query`). Serialised with the other
    /// lifecycle calls by the VM's lock. Throws `errc::not_running`,
    /// `errc::not_found` when the VM has no NIC on `network`, and QMP's errors
    /// (`errc::timeout` after 10 s).
    boost::asio::awaitable<void> set_link(std::string network, bool up);

    /// Running state, pid and the state file (how it last ended).
    boost::asio::awaitable<status> query();

    /// `query` without waiting: a QEMU that ended a moment ago, before its
    /// supervisor recorded how, shows as crashed ("no exit status was
    /// recorded") until that record comes. Reads files only; writes nothing.
    status query_now();

    /// The forwards with the host ports QEMU bound, those added by
    /// `add_forward` included. Throws `errc::not_running`.
    boost::asio::awaitable<std::vector<port_forward>> ports() override;

    /// Adds a host->guest TCP forward to the running VM (HMP `hostfwd_add`
    /// through QMP) and records it in the state file, so that `ports`,
    /// `query` and `wait_ready` in any process see it; it lasts until
    /// `remove_forward` or the VM's end (the next start has only its
    /// `start_options::ports`). Host port 0 lets QEMU pick a free port,
    /// read back from `info usernet`. Returns the forward with its bound
    /// host port. Serialised with the other lifecycle calls by the VM's
    /// lock; each QMP command may take `options::start_timeout`.
    /// Throws `errc::invalid_argument` for a host address that is not an
    /// IPv4 literal or guest port 0, `errc::already_exists` when the VM
    /// forwards that host address and port already, `errc::busy` when QEMU
    /// cannot listen there (the port is taken by another program, or not
    /// allowed), `errc::not_running`, `errc::timeout` or
    /// `errc::monitor_closed` for a silent or vanished QEMU. Nothing is left
    /// half-done: when anything fails after QEMU made the forward
    /// (recording it, reading its port, cancellation), it is removed again.
    boost::asio::awaitable<port_forward> add_forward(port_forward forward);

    /// Removes the forward listening on `forward.host_address` and
    /// `forward.host_port` (its `guest_port`, when not 0, must match too)
    /// from the running VM and from the state file. Throws
    /// `errc::not_found` when the VM has no such forward,
    /// `errc::invalid_argument` for host port 0, `errc::not_running`, and
    /// as `add_forward` for QMP failures. Removing the forward to guest
    /// port 22 is allowed (then `shell`, `sync` and `wait_ready` fail).
    boost::asio::awaitable<void> remove_forward(port_forward forward);

    /// Waits until a serial console line contains `text` (from this boot's
    /// start), failing fast with `errc::guest_died` if QEMU exits and with
    /// `errc::timeout` after `timeout`; both carry the console tail.
    boost::asio::awaitable<std::string> wait_for_console(
        std::string text, std::chrono::milliseconds timeout) override;

    /// The last `lines` lines of the serial console log ("" when none).
    std::string console_tail(std::size_t lines = 20) const;

    const options& config() const noexcept; ///< The options, defaults applied.
    const layout& files() const noexcept;   ///< Where the VM's files are.

    ~manager() override;
    manager(manager&&) noexcept;            ///< A moved-from manager may only be destroyed.
    manager& operator=(manager&&) noexcept; ///< A moved-from manager may only be destroyed.

private:
    struct impl; // src/qemu/manager_impl.hpp
    std::unique_ptr<impl> impl_;
};

} // namespace localvm::qemu
