// Virtual networks: named Ethernet segments that VMs of the QEMU backend
// join, so that they reach each other (and nothing else) without root.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace localvm::qemu {

/// Configuration of one virtual network.
struct network_options {
    /// Network name: 1-64 characters of [A-Za-z0-9._-], not "." or "..";
    /// anything else is `errc::invalid_argument`.
    std::string name;
    /// As `options::data_dir` (same default): the network's definition goes
    /// to `data_dir/@networks/<name>/` (mode 0700). VMs find a network in
    /// their own `data_dir`.
    std::filesystem::path data_dir;
    /// As `options::runtime_dir` (same default): the switch's sockets, pid
    /// file, log and lock go to `runtime_dir/@networks/<name>/` (mode 0700).
    std::filesystem::path runtime_dir;
    /// The switch program. Default `vde_switch` from PATH (Debian's `vde2`).
    std::filesystem::path switch_binary = "vde_switch";
    /// How long a call waits for another one on the same network (in any
    /// process) to finish. Default 10 minutes.
    std::chrono::milliseconds lock_timeout{std::chrono::minutes(10)};
    /// How long starting the switch may take until its socket answers.
    /// Default 10 s.
    std::chrono::milliseconds start_timeout{std::chrono::seconds(10)};
};

/// Where one network's files live. All paths are absolute.
struct network_layout {
    std::filesystem::path data;        ///< data_dir/@networks/<name> (0700)
    std::filesystem::path runtime;     ///< runtime_dir/@networks/<name> (0700)
    std::filesystem::path definition;  ///< data/network.json: the network and its members
    std::filesystem::path switch_dir;  ///< runtime/switch: the switch's socket directory (QEMU's `sock=`)
    std::filesystem::path pidfile;     ///< runtime/switch.pid (the switch holds its lock)
    std::filesystem::path log;         ///< runtime/switch.log (the switch's stdout and stderr)
    std::filesystem::path exit_status; ///< runtime/exit-status (written when the switch ends)
    std::filesystem::path lock;        ///< runtime/lock (serialises calls on the network)
};

/// Checks a network name; returns a message naming the problem, or "" when valid.
std::string check_network_name(std::string_view name);

/// The layout for `opts` (defaults applied). Throws `errc::invalid_argument`
/// for a bad name or a socket path longer than a unix socket allows.
network_layout make_network_layout(const network_options& opts);

/// The networks defined in `data_dir` (empty: the default), sorted by name.
std::vector<std::string> list_networks(const std::filesystem::path& data_dir = {});

/// A VM on a network, as the network's definition records it.
struct network_member {
    std::string vm;      ///< The VM's name.
    std::string address; ///< "10.0.0.1/24"; empty: none.
    std::string mac;     ///< The NIC's MAC address ("0e:12:34:56:78:9a"); empty for a reservation.
    std::filesystem::path vm_data;    ///< The VM's data directory: the address is its while it exists.
    std::filesystem::path vm_pidfile; ///< The VM's QEMU pid file (how `running` is judged).
    bool running = false; ///< Its QEMU runs (holds the lock on `vm_pidfile`).
};

/// A snapshot of one network for status displays.
struct network_status {
    bool exists = false;                 ///< The definition exists.
    std::optional<pid_t> switch_pid;     ///< The switch's pid while it runs.
    std::vector<network_member> members; ///< Every VM that joined or reserved an address.
};

/// What `join` hands the VM that joins.
struct network_join {
    std::filesystem::path switch_dir; ///< QEMU's `-netdev vde,sock=` value.
    /// The other members with an address: (name, IPv4 address without the
    /// prefix), sorted by name, for the guest's /etc/hosts.
    std::vector<std::pair<std::string, std::string>> peers;
};

/// One virtual network: an Ethernet segment on a `vde_switch` (from
/// Debian's `vde2`, the switch NixOS's test driver uses) that VMs of the
/// QEMU backend join with `start_options::networks` (QEMU `-netdev vde`).
/// The switch listens on unix sockets in the network's private runtime
/// directory only: no root, no host bridge or tap, no traffic leaves the
/// host; guests on it reach each other and nothing else (their user-mode
/// NIC keeps the forwards and SSH).
///
/// The switch is started on demand, when the first VM joins, detached as
/// QEMU is (it outlives its starter; any later process finds it by the lock
/// it holds on `network_layout::pidfile`), and runs until `remove`. Calls
/// are serialised across processes by a lock file, as a VM's are. The
/// object keeps no connection between calls.
class virtual_network {
public:
    /// Validates `opts` (throws `errc::invalid_argument` naming the
    /// problem); touches no file.
    virtual_network(boost::asio::any_io_executor executor, network_options opts);

    /// Defines the network (its data directory and an empty definition,
    /// written atomically). Throws `errc::already_exists`.
    boost::asio::awaitable<void> create();
    /// True when the network is defined.
    boost::asio::awaitable<bool> exists();
    /// Stops the switch (SIGTERM, then SIGKILL after 5 s, through a pidfd)
    /// and deletes the network's data and runtime directories. Throws
    /// `errc::busy` naming the running VMs still on it (nothing changed);
    /// a network that does not exist is a no-op.
    boost::asio::awaitable<void> remove();
    /// The definition, its members (with whether each runs) and the switch.
    boost::asio::awaitable<network_status> query();

    /// Records that VM `vm` (whose data directory is `vm_data`) will have
    /// `address` ("10.0.0.1/24") on this network, so that VMs booting
    /// before it already list it in /etc/hosts (the test kit reserves every
    /// address before it boots a set of VMs concurrently). Throws as `join`
    /// does for the address; starts nothing.
    boost::asio::awaitable<void> reserve(std::string vm, std::filesystem::path vm_data,
                                         std::string address);

    /// For `qemu::manager::start`: records VM `vm` (its NIC's `mac`, its
    /// `address`, empty for none, its data directory and QEMU pid file) as
    /// a member, starts the switch unless it runs, and returns where QEMU
    /// connects and the peers. An address belongs to the first VM that
    /// claims it while that VM exists (its data directory): another VM's
    /// claim is `errc::already_exists` naming the holder, and nothing
    /// changes. Throws `errc::not_found` when the network is not defined,
    /// `errc::process_failed` with the switch's output when it does not
    /// start (`errc::timeout` after `network_options::start_timeout`).
    /// Cancellation while the switch starts kills it.
    boost::asio::awaitable<network_join> join(std::string vm, std::filesystem::path vm_data,
                                              std::filesystem::path vm_pidfile,
                                              std::string mac, std::string address);

    const network_options& config() const noexcept { return opts_; } ///< Defaults applied.
    const network_layout& files() const noexcept { return layout_; } ///< Where its files are.

private:
    boost::asio::awaitable<void> ensure_switch();
    boost::asio::any_io_executor executor_;
    network_options opts_;
    network_layout layout_;
};

/// The MAC address a VM's NIC on a network gets by default: stable for the
/// pair (`vm`, `network`), locally administered and unicast (first octet
/// 0x?2, 0x?6, 0x?A or 0x?E), never QEMU's own 52:54:00:xx:xx:xx. Pure.
std::string default_mac(std::string_view vm, std::string_view network);

/// Checks a MAC address "xx:xx:xx:xx:xx:xx" (hex, any case; returned in
/// lower case): unicast and not all zero. Returns nullopt otherwise. Pure.
std::optional<std::string> normalize_mac(std::string_view mac);

/// An IPv4 address with prefix on a network.
struct ipv4_prefix {
    std::string address;  ///< "10.0.0.1"
    unsigned prefix = 24; ///< 1..32
};

/// Parses "A.B.C.D/N" (N 1..32) or "A.B.C.D" (prefix 24). Returns nullopt
/// and a message in `why` for anything else, for addresses inside QEMU's
/// user-mode network 10.0.2.0/24 (the VM's own NIC), and for loopback,
/// multicast, broadcast and 0.0.0.0. Pure.
std::optional<ipv4_prefix> parse_ipv4_prefix(std::string_view text, std::string& why);

} // namespace localvm::qemu
