// The QEMU command line, built as a pure function of a resolved launch plan.
#pragma once

#include <localvm/manager.hpp>

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::qemu {

/// Guest architecture.
enum class arch { amd64, arm64 };

/// Accelerator choice. `automatic` resolves to kvm or tcg (see accel.hpp).
enum class accelerator { automatic, kvm, tcg };

/// The word for an accelerator: "kvm", "tcg", "auto" (QEMU's -accel names
/// for the first two).
std::string_view to_string(accelerator a) noexcept;

/// Guest networking (QEMU user-mode networking, with the port forwards).
enum class network {
    user,       ///< NAT: the guest reaches what the host reaches (the original's default).
    restricted, ///< `restrict=on`: the guest reaches nothing; only the forwards work.
};

/// Where QEMU's human monitor (HMP, the `(qemu)` prompt) goes. QMP, the
/// library's own control channel on `launch_plan::qmp_socket`, is there in
/// every mode.
enum class monitor_mode {
    none,   ///< No human monitor.
    stdio,  ///< `-monitor stdio`: on QEMU's own stdin/stdout, for a QEMU the
            ///< caller runs in the foreground on its terminal. `qemu::manager`
            ///< never uses it (its QEMU runs detached, stdin on /dev/null).
    socket, ///< A readline monitor on the unix socket `launch_plan::monitor_socket`
            ///< (server, one client at a time): what `start_options::monitor` gives,
            ///< reached with `qemu::manager::attach_monitor`.
};

/// UEFI firmware images for firmware boot.
struct firmware {
    std::filesystem::path code; ///< Read-only code image (OVMF_CODE / AAVMF_CODE).
    std::filesystem::path vars; ///< The VM's own writable copy of the variable store.
};

/// A NIC on a virtual network: a virtio-net device on a `vde` netdev.
struct virtual_nic {
    std::string id;                      ///< Device id (QMP `set_link` name), e.g. "vnic0"; the netdev is "<id>-net".
    std::filesystem::path switch_dir;    ///< The vde_switch's socket directory (`sock=`).
    std::string mac;                     ///< "xx:xx:xx:xx:xx:xx".
};

/// QEMU's MAC address for the user-mode NIC, set explicitly when the VM has
/// virtual NICs too (so that the seed's network-config can match it).
inline constexpr std::string_view user_nic_mac = "52:54:00:12:34:56";

/// The id of the guest agent's virtserialport device: QEMU names it in its
/// VSERPORT_CHANGE events (the guest opening or closing the agent's port).
inline constexpr std::string_view agent_port_device_id = "qga-port";

/// Everything the command line depends on, already validated and resolved.
struct launch_plan {
    std::string name;                        ///< VM name (shown by QEMU as the guest name).
    arch architecture = arch::amd64;         ///< amd64: q35; arm64: virt.
    accelerator accel = accelerator::tcg;    ///< kvm or tcg (automatic is resolved before).
    std::filesystem::path qemu_binary;       ///< argv[0].
    /// The machine type; empty: the alias "q35" (amd64) or "virt" (arm64),
    /// which QEMU resolves to its newest versioned type. A snapshot pins the
    /// versioned name (e.g. "pc-q35-7.2"), as a restore needs the same one.
    std::string machine;
    unsigned cpus = 2;                       ///< -smp.
    std::uint64_t memory_mib = 4096;         ///< -m, in MiB.
    std::filesystem::path disk;              ///< qcow2 overlay, first virtio disk.
    std::filesystem::path seed;              ///< NoCloud ISO, second virtio disk (read-only); empty: none.
    std::optional<direct_boot> boot;         ///< Direct kernel boot (cmdline already normalised).
    std::optional<firmware> uefi;            ///< Firmware boot; ignored with `boot`.
    network net = network::user;             ///< User-mode networking flavour.
    std::vector<port_forward> ports;         ///< hostfwd rules (host_port 0: QEMU picks).
    std::vector<virtual_nic> nics;           ///< NICs on virtual networks, after the user-mode NIC.
    std::filesystem::path qmp_socket;        ///< QMP control socket (unix, server).
    std::vector<std::filesystem::path> extra_qmp_sockets; ///< More QMP monitors, for callers.
    std::filesystem::path console_socket;    ///< Serial console socket (unix, server).
    std::filesystem::path console_log;       ///< The serial console's log file (appended).
    /// The guest agent's channel: a virtio-serial port named
    /// `org.qemu.guest_agent.0` on this unix socket (server); empty: none.
    std::filesystem::path agent_socket;
    std::filesystem::path pidfile;           ///< QEMU's -pidfile (QEMU holds a write lock on it).
    monitor_mode monitor = monitor_mode::none; ///< The human monitor, if any.
    std::filesystem::path monitor_socket;    ///< HMP socket (unix, server) for `monitor_mode::socket`.
    bool paused = true;                      ///< `-S`: start paused until QMP `cont`.
    /// `-incoming defer`: QEMU waits for QMP `migrate-incoming` to load a
    /// saved machine state (a snapshot's restore) before it can run.
    bool incoming = false;
};

/// The argv for `plan`: q35 + virtio on amd64, virt on arm64, the
/// accelerator, direct or firmware boot, disk and seed as virtio-blk, user
/// networking with the forwards (with `mac=` `user_nic_mac` when there are
/// virtual NICs), each virtual NIC (`-netdev vde,id=<id>-net,sock=<dir>
/// -device virtio-net-pci,netdev=<id>-net,id=<id>,mac=<mac>`), QMP (and any extra QMP monitors, ids qmp1,
/// qmp2, ...) and the serial console on unix sockets, the console log, the
/// guest agent's virtio-serial port (`-chardev socket,id=qga0,...
/// -device virtio-serial-pci -device virtserialport,chardev=qga0,
/// name=org.qemu.guest_agent.0,id=qga-port`) when `agent_socket` is set, a virtio RNG (guests need entropy for SSH host keys), a pvpanic device with
/// `-action panic=exit-failure` (a guest kernel panic ends QEMU with status
/// 1), `-S`, `-incoming defer` when `incoming`, and last the human monitor: `-monitor stdio`, or `-chardev
/// socket,id=hmp,path=...,server=on,wait=off -mon chardev=hmp,mode=readline`.
/// Values that QEMU parses as option lists have commas doubled. Pure; never
/// fails (validate the plan first).
std::vector<std::string> command_line(const launch_plan& plan);

/// Doubles every comma, so that a value inside a QEMU option list
/// (`file=a,,b`) is read as one value.
std::string escape_option_value(std::string_view value);

/// Normalises a kernel command line like the original tool: drops
/// `BOOT_IMAGE=...` and `$vt_handoff`, adds `rootwait` and the serial
/// console for `a` when missing, keeps each repeated word once. Words are
/// separated by blanks; quoted words are kept whole.
std::string normalize_kernel_cmdline(std::string_view cmdline, arch a);

/// Parses a memory size with QEMU's suffixes (K, M, G, T, optionally
/// followed by "B" or "iB", any case; a plain number is MiB) into MiB.
/// Returns nullopt and sets `ec` to `errc::invalid_argument` for anything
/// else, a size below 16 MiB, or a size that is not a whole number of MiB.
std::optional<std::uint64_t> parse_memory_mib(std::string_view text,
                                              boost::system::error_code& ec);

/// Parses a disk size for `qemu-img create` into bytes: a whole number with
/// an optional suffix K, M, G, T, P or E (powers of 1024, any case,
/// optionally followed by "B" or "iB"); a plain number is bytes. Returns
/// nullopt and sets `ec` to `errc::invalid_argument` for anything else
/// (signs, spaces, fractions, other suffixes), for 0, and for sizes of
/// 2^63 bytes or more.
std::optional<std::uint64_t> parse_disk_size(std::string_view text, boost::system::error_code& ec);

/// The serial console device name the kernel uses on `a` (ttyS0, ttyAMA0).
std::string_view serial_console_device(arch a) noexcept;

/// Parses HMP `info usernet` text into the host ports QEMU bound for the
/// given forwards: for each forward in `wanted` (in order) the host port
/// listed for the same host address and guest port. Returns nullopt when
/// any forward is missing from the text.
std::optional<std::vector<std::uint16_t>>
parse_usernet_ports(std::string_view info_usernet, const std::vector<port_forward>& wanted);

} // namespace localvm::qemu
