// The libvirt backend: one VM's lifecycle through a libvirt daemon, on the
// caller's io_context.
#pragma once

#include <localvm/console/serial.hpp>
#include <localvm/libvirt/client.hpp>
#include <localvm/manager.hpp>
#include <localvm/qemu/options.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace localvm::libvirt {

/// Configuration of one VM managed through libvirt.
struct manager_options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    manager_options() = default;
    /// The daemon (see `client::connect`). Default "qemu:///system". A
    /// local URI (a unix socket) or `qemu+ssh://[user@]host[:port]/system?
    /// keyfile=KEY[&known_hosts=FILE][&socket=PATH]`, a remote daemon. Over
    /// a remote connection the daemon's files are not this host's: the base
    /// image, the kernel and the initrd (this host's files) go into the pool
    /// as copies named by their sha256 (uploaded once, reused by every VM;
    /// see `create`); QEMU gets no pid file (`pid` is nullopt) and no console
    /// log file (the console goes through the daemon's console stream, so
    /// `console`, `wait_for_console` and the console lines of `wait_ready`
    /// work, but see only what the guest prints after they open); for
    /// firmware (UEFI) boot, the firmware code this host would use goes
    /// into the pool the same way (so the daemon's host needs no OVMF
    /// package, but its QEMU must accept a pflash image from the pool's
    /// directory); `vm.qemu_binary`, when absolute, names a binary on the
    /// daemon's host. The guest's forwards are bound on the
    /// daemon host's 127.0.0.1, so `wait_ready`, `shell` and `sync` reach
    /// them with ssh through that host as a jump host (the URI's user, port,
    /// keyfile and known_hosts; see `ssh::jump_host`).
    std::string uri = "qemu:///system";
    /// The storage pool that holds the VM's volumes: `<name>.qcow2` (the
    /// overlay), `<name>-seed.iso` (the NoCloud seed) and, for firmware
    /// boot, `<name>-vars.fd` (the UEFI variables, made from the firmware's
    /// template at the first firmware boot and kept until `remove`).
    /// A directory pool. Default "default".
    std::string pool = "default";
    /// The VM as for the QEMU backend, with the same meaning where libvirt
    /// has one: `name` (the domain's name too), `architecture`, `net`,
    /// `qemu_binary` (libvirt's `<emulator>` when absolute; empty: libvirt's
    /// choice), `qemu_img` (reads the base image's format), `disk_size`,
    /// `allow_base_backing_chain`, `ssh_identity_file`, `ssh_user`,
    /// `host_key`, `stop` (stage timeouts, see `manager::stop`),
    /// `lock_timeout`. `accel`:
    /// `kvm` or `tcg`; `automatic` means tcg (the daemon's /dev/kvm is not
    /// this process's to probe). `data_dir` and `runtime_dir` hold this
    /// host's side of the VM: the pinned SSH host key, known_hosts, QEMU's
    /// pid file, the console log and the lock file (the last three for a
    /// local daemon; the lock serialises this host's processes, the upload
    /// locks of pool copies live beside the VMs' runtime directories, in
    /// `.libvirt-uploads`). Ignored: `kvm_watchdog`,
    /// `extra_qmp`, `start_timeout`.
    qemu::options vm;
    /// How the connection is made (deadlines, keepalive).
    client_options client;
};

/// Manages one VM as a transient libvirt domain named `vm.name`. The
/// connection is opened on the first call and kept (reopened when it ends);
/// the VM's state is the daemon's, so any process with the same options can
/// ask `running`, open a shell and `stop` a VM another started. `create`,
/// `start`, `stop` and `remove` of one VM are serialised between the
/// processes of this host by the QEMU backend's lock file (`vm.lock_timeout`).
/// Errors are `localvm::error` with the same codes and meanings as
/// `qemu::manager`; a failing daemon call throws `call_error`
/// (`errc::libvirt_error`, libvirt's code and message kept), a lost
/// connection `errc::libvirt_closed`.
class manager final : public localvm::manager {
public:
    /// Checks the name and the URI (`errc::invalid_argument`, also for an
    /// ssh URI without keyfile or with a bad user or host); connects to
    /// nothing, touches no file.
    manager(boost::asio::any_io_executor executor, manager_options opts);
    ~manager() override;
    manager(manager&&) noexcept;
    manager& operator=(manager&&) noexcept;

    std::string addr() const override;        ///< "10.0.2.2" (user-mode networking).
    void set_output(line_sink sink) override; ///< Lifecycle messages.

    /// Creates the overlay volume `<name>.qcow2` in the pool: libvirt runs
    /// qemu-img with `base_image` (a file on this host, made absolute) as
    /// its backing file, of the base's format (read with `qemu-img info`
    /// under limits; a base naming other files is `errc::unsupported` as in
    /// `qemu::manager::create`), sized `vm.disk_size` or as the base. A
    /// local daemon uses the file itself. A remote daemon uses the pool's
    /// copy of it, the raw volume `localvm-sha256-HEX` (HEX: the file's
    /// sha256), uploaded through the daemon when the pool has none yet and
    /// reused otherwise (a copy is complete when its empty marker volume
    /// `localvm-sha256-HEX.complete` exists; an upload that fails or is
    /// cancelled deletes its volume, one that was interrupted is replaced).
    /// Copies are shared and never deleted by `remove`.
    ///
    /// `base_image` of the form `volume:NAME` names a volume already in the
    /// pool instead (e.g. an image the daemon's administrator put there),
    /// over any connection: its format is the one the daemon reports, and a
    /// volume with a backing store of its own is `errc::unsupported` unless
    /// `vm.allow_base_backing_chain`; its content is the daemon's business
    /// (this host cannot inspect it), and `remove` leaves it alone.
    ///
    /// Throws `errc::not_found` for a missing base, volume or pool,
    /// `errc::already_exists` when the overlay exists. A failed create
    /// leaves no overlay volume.
    boost::asio::awaitable<void> create(std::filesystem::path base_image) override;

    /// True when the overlay volume exists.
    boost::asio::awaitable<bool> exists() override;

    /// Plans as `qemu::manager::start` (same checks, same seed, the pinned
    /// host key), uploads the seed ISO (written in memory) as the volume
    /// `<name>-seed.iso`, and creates the domain from the plan's XML (see
    /// src/libvirt/domain_xml.hpp: user-mode networking with the forwards
    /// through QEMU command-line passthrough). Returns once the domain runs
    /// and QEMU reports the forwards bound. Throws `errc::already_running`,
    /// `errc::not_found` when the VM was not created, `errc::invalid_argument`
    /// for bad options, `errc::unsupported` for `start_options::networks`,
    /// `errc::process_failed` with libvirt's words (QEMU's stderr among
    /// them) when the domain does not start, e.g. a host port already taken.
    /// A failed or cancelled start destroys the domain if it was created.
    boost::asio::awaitable<void> start(start_options opts) override;

    /// True while the domain is active (running, paused, shutting down).
    boost::asio::awaitable<bool> running() override;

    /// QEMU's pid on this host while the domain is active (read from the
    /// lock QEMU holds on its pid file); nullopt otherwise, and always over
    /// a remote connection (a pid on another host means nothing here).
    boost::asio::awaitable<std::optional<pid_t>> pid() override;

    /// The forwards as QEMU bound them (host ports it picked for 0), asked
    /// through the daemon (HMP `info usernet`). Throws `errc::not_running`.
    boost::asio::awaitable<std::vector<port_forward>> ports() override;

    /// As `qemu::manager::wait_ready`, through the forward of guest port 22;
    /// fails fast with `errc::guest_died` when the domain stops, with the
    /// console's last lines. Meanwhile it reads the domain's console stream
    /// (unless another client holds the console) and gives each line to the
    /// output sink as "[NAME] console: LINE". Over a remote connection there
    /// is no banner stage: ssh logins through the daemon's host (a jump host)
    /// are the probe, so `vm.ssh_identity_file` is required there (else
    /// `errc::unsupported`).
    boost::asio::awaitable<void> wait_ready(std::chrono::milliseconds timeout) override;

    /// Waits until a serial console line (or the unfinished last line, such
    /// as a prompt) contains `text` and returns it, cleaned as
    /// `console::clean_line` does. It reads the domain's console stream,
    /// which works over any connection but carries only what the guest
    /// prints from the moment it opens; where this host has the console log
    /// (a local daemon), the lines printed earlier in this boot are searched
    /// first, as `qemu::manager::wait_for_console` does. Lines read from the
    /// stream go to the output sink as "[NAME] console: LINE". Throws
    /// `errc::not_running`; `errc::guest_died` when the domain stops,
    /// `errc::timeout` after `timeout` (`no_deadline`: none; both with the
    /// console's last lines);
    /// `errc::busy` when another client holds the console and this host has
    /// no log, or takes it by force during the wait. Cancellation: throws
    /// `operation_aborted`; the console and the lifecycle registration are
    /// released.
    boost::asio::awaitable<std::string> wait_for_console(
        std::string text, std::chrono::milliseconds timeout) override;

    /// As `qemu::manager::shell` (through the daemon's host when remote).
    /// Throws `errc::not_running`.
    boost::asio::awaitable<shell_result> shell(std::string command, shell_options opts) override;

    /// `attach_console` on the caller's terminal with the usual hint.
    boost::asio::awaitable<void> console() override;

    /// Attaches a terminal (see `console::attach_options`) to the domain's
    /// console stream, over any connection: bytes both ways until the escape
    /// byte, the end of input, or the domain stops (`attach_end::vm_closed`).
    /// Throws `errc::not_running`; `errc::busy` when another client holds
    /// the console (this never takes it by force); as `console::attach` for
    /// the terminal. Cancellation restores the terminal and releases the
    /// console.
    boost::asio::awaitable<console::attach_end> attach_console(console::attach_options opts);

    /// As `qemu::manager::sync` (through the daemon's host when remote).
    /// Throws `errc::not_running`.
    boost::asio::awaitable<void> sync(std::filesystem::path from, std::string to,
                                      sync_options opts) override;

    /// Stops the domain with the QEMU backend's ladder and stage timeouts
    /// (`vm.stop`): the ACPI power button (libvirt's shutdown, pressed again
    /// every `powerdown_repeat`) until the lifecycle event says it stopped
    /// or `powerdown_timeout` passes, then a graceful destroy (SIGTERM)
    /// awaited for `quit_timeout` and `term_timeout`, then a forced destroy
    /// (SIGKILL) for `kill_timeout`. The guest agent is not used. Throws
    /// `errc::not_running`, `errc::process_failed` when the domain outlives
    /// the forced destroy. Cancellation leaves the domain in whatever stage
    /// it reached.
    boost::asio::awaitable<void> stop() override;

    /// Deletes the overlay and seed volumes, the UEFI variables and this
    /// host's files of the VM (undefining an inactive domain of the name);
    /// not the pool's shared copies of local files (see `create`).
    /// Throws `errc::already_running` while the domain is active; a VM that
    /// does not exist is a no-op.
    boost::asio::awaitable<void> remove() override;

    /// This host's files of the VM (`qemu::make_layout` of `vm`); only
    /// `host_key`, `known_hosts`, `pidfile` and `console_log` are used.
    const qemu::layout& files() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace localvm::libvirt
