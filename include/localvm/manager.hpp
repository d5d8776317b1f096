// The abstract VM manager: the awaitable lifecycle of one virtual machine.
#pragma once

#include <localvm/commands.hpp>
#include <localvm/output.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace localvm {

/// Direct kernel boot: QEMU loads the kernel and initrd itself (`-kernel`,
/// `-initrd`, `-append`). Absent in `start_options` means firmware boot.
struct direct_boot {
    std::filesystem::path kernel; ///< Kernel image (bzImage or ELF vmlinux).
    std::filesystem::path initrd; ///< Initial ramdisk; empty for none.
    /// Kernel command line. It is normalised: `BOOT_IMAGE=...` and
    /// `$vt_handoff` are dropped, `rootwait` and the serial console
    /// (`console=ttyS0` on amd64, `console=ttyAMA0` on arm64) are added when
    /// missing, and repeated words are kept once.
    std::string cmdline;
};

/// A host TCP port forwarded to a guest TCP port (user-mode networking).
struct port_forward {
    std::string host_address = "127.0.0.1"; ///< Host address to listen on (an IPv4 literal).
    std::uint16_t host_port = 0;             ///< 0 picks a free port; read it back from the manager.
    std::uint16_t guest_port = 0;            ///< Port in the guest (e.g. 22).
};

/// One NIC on a virtual network (see `qemu::virtual_network`), besides the
/// VM's user-mode NIC (which keeps the forwards and SSH).
struct network_attachment {
    std::string network; ///< The network's name; it must exist (else `errc::not_found`).
    /// "xx:xx:xx:xx:xx:xx", unicast; empty (the default): one derived stably
    /// from the VM's and the network's names (`qemu::default_mac`).
    std::string mac;
    /// The guest's IPv4 address and prefix on the network, "10.0.0.1/24"
    /// ("10.0.0.1" means /24), handed over in the seed's network-config
    /// (matched by MAC); empty: the interface comes up without an address.
    /// Not inside 10.0.2.0/24 (the user-mode network).
    std::string address;
};

/// What `start` boots. Defaults follow the original tool: 2 CPUs, 4G.
struct start_options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    start_options() = default;
    std::string user_data;          ///< cloud-init user-data put on the NoCloud seed (may be empty).
    unsigned cpus = 2;              ///< Virtual CPUs (1..255).
    /// Guest memory with QEMU's suffixes: "512M", "4G", "1T"; a plain number
    /// means MiB. Anything else is `errc::invalid_argument`.
    std::string memory = "4G";
    std::string ssh_authorized_key; ///< Public key put in meta-data `public-keys` (may be empty).
    /// Give QEMU a human monitor (HMP). The original tool put it on its
    /// terminal (`-monitor stdio`); here QEMU outlives its starter, so the
    /// QEMU backend puts it on a unix socket in the VM's runtime directory,
    /// and any process attaches a terminal to it later
    /// (`qemu::manager::attach_monitor`). Default false.
    bool monitor = false;
    std::optional<direct_boot> boot; ///< Direct kernel boot; absent means firmware (UEFI) boot.
    std::vector<port_forward> ports; ///< Host->guest TCP forwards.
    /// Virtual networks to join, one NIC each, at most one per network
    /// (else `errc::invalid_argument`). The guest's /etc/hosts lists the
    /// other members with an address by name. Default: none.
    std::vector<network_attachment> networks;
};

/// The lifecycle of one VM, every call an awaitable on the caller's executor.
/// Implementations: `localvm::qemu::manager`. Errors are `localvm::error`.
class manager {
public:
    virtual ~manager() = default;

    /// The host's address as seen from the guest (10.0.2.2 with user networking).
    virtual std::string addr() const = 0;

    /// Where lifecycle messages and child output go, line by line. Default: nowhere.
    virtual void set_output(line_sink sink) = 0;

    /// Creates the VM's disk as a copy-on-write overlay on `base_image`.
    /// Throws `errc::not_found` for a missing base, `errc::already_exists` when
    /// the VM exists, `errc::process_failed` when qemu-img fails; leaves no
    /// partial file behind.
    virtual boost::asio::awaitable<void> create(std::filesystem::path base_image) = 0;

    /// True when the VM's disk exists.
    virtual boost::asio::awaitable<bool> exists() = 0;

    /// Boots the VM and returns once QEMU runs and its monitor answers. Throws
    /// `errc::already_running`, `errc::invalid_argument` for bad options,
    /// `errc::not_found` when the VM was not created, `errc::process_failed`
    /// with QEMU's stderr when it exits during start. A failed or cancelled
    /// start leaves no QEMU running.
    virtual boost::asio::awaitable<void> start(start_options opts) = 0;

    /// True while the VM's QEMU process runs (safe against stale state and pid reuse).
    virtual boost::asio::awaitable<bool> running() = 0;

    /// The running QEMU's pid; nullopt when not running.
    virtual boost::asio::awaitable<std::optional<pid_t>> pid() = 0;

    /// Waits until SSH in the guest answers (its banner, or a real login),
    /// failing fast with `errc::guest_died` and the console tail if QEMU
    /// exits, or with `errc::ssh_unreachable` after `timeout`.
    virtual boost::asio::awaitable<void> wait_ready(std::chrono::milliseconds timeout) = 0;

    /// Runs `command` in the guest over ssh. An empty command opens an
    /// interactive session on the caller's terminal (or the fds in `opts`)
    /// and returns when it ends. The remote exit status is returned; ssh
    /// failures throw `errc::ssh_unreachable`; the timeout throws
    /// `errc::timeout`. Cancellation kills ssh.
    virtual boost::asio::awaitable<shell_result> shell(std::string command, shell_options opts) = 0;

    /// Attaches the caller's terminal to the serial console until Ctrl-]
    /// or the VM stops. Throws `errc::not_running`.
    virtual boost::asio::awaitable<void> console() = 0;

    /// The VM's port forwards with the host ports as bound (a host port 0
    /// given to `start` is the one QEMU picked). Throws `errc::not_running`.
    virtual boost::asio::awaitable<std::vector<port_forward>> ports() = 0;

    /// Waits until a serial console line of this boot contains `text` and
    /// returns that line. Throws `errc::not_running`; `errc::guest_died`
    /// when the VM stops meanwhile and `errc::timeout` after `timeout`
    /// (`no_deadline`: none), both with the console's last lines. Each
    /// backend says what more it needs (see theirs). Cancellation: throws
    /// `operation_aborted`, nothing is left open.
    virtual boost::asio::awaitable<std::string> wait_for_console(
        std::string text, std::chrono::milliseconds timeout) = 0;

    /// Copies `from` (a host path) to `to` (a guest path) with rsync over ssh;
    /// with `sync_direction::from_guest`, `from` is the guest path and `to`
    /// the host path (symbolic links the guest sends that point outside
    /// the copied tree are skipped). A trailing '/' on `from` copies a
    /// directory's contents. Throws `errc::not_found` when `from` does not
    /// exist, `errc::process_failed` with rsync's exit status and stderr for
    /// other failures.
    virtual boost::asio::awaitable<void> sync(std::filesystem::path from, std::string to,
                                              sync_options opts) = 0;

    /// Stops the VM: ACPI power button, then `quit`, then SIGTERM, then
    /// SIGKILL, each with its own timeout. Returns when QEMU is gone. Throws
    /// `errc::not_running`.
    virtual boost::asio::awaitable<void> stop() = 0;

    /// Deletes the VM's disk, seed and runtime files. Throws
    /// `errc::already_running` for a running VM; a VM that does not exist is a no-op.
    virtual boost::asio::awaitable<void> remove() = 0;
};

} // namespace localvm
