// libvirt connection URIs: `driver[+transport]://[user@][host][:port]/path[?params]`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace localvm::libvirt {

/// How the client reaches the daemon.
enum class transport_kind {
    unix_socket, ///< A local unix socket (`qemu:///system`, `qemu+unix:///system`).
    ssh,         ///< ssh to the host, then virt-ssh-helper or `nc -U` there (`qemu+ssh://`).
};

/// What runs on the far side of ssh (the `proxy` parameter, as libvirt's).
enum class ssh_proxy {
    /// Default: `virt-ssh-helper URI` when the host has it, else
    /// `nc -U SOCKET`; with a `socket` parameter, `nc -U SOCKET` only
    /// (virt-ssh-helper ignores that parameter).
    automatic,
    netcat, ///< `nc -U SOCKET` only (`proxy=netcat`).
    native, ///< `virt-ssh-helper URI` only (`proxy=native`).
};

/// A parsed libvirt URI. Parameters the remote driver itself consumes are
/// taken out of `params` into the named fields; the rest are passed on to
/// the daemon in `name()`.
struct uri {
    std::string driver; ///< e.g. "qemu" (letters, digits, '_', '-').
    transport_kind transport = transport_kind::unix_socket;
    std::string user;            ///< ssh user; empty: ssh's default (the local user).
    std::string host;            ///< ssh host; empty for local URIs.
    std::uint16_t port = 0;      ///< ssh port; 0: ssh's default (22).
    std::string path;            ///< e.g. "/system", "/session".
    std::string socket;          ///< `socket=`: the daemon's unix socket; empty: the default.
    std::string keyfile;         ///< `keyfile=`: ssh private key.
    std::string known_hosts;     ///< `known_hosts=`: ssh known_hosts file.
    std::string netcat = "nc";   ///< `netcat=`: the remote netcat binary.
    std::string command = "ssh"; ///< `command=`: the local ssh binary.
    ssh_proxy proxy = ssh_proxy::automatic;                  ///< `proxy=`: auto, netcat or native.
    std::vector<std::pair<std::string, std::string>> params; ///< Others, decoded, in order.

    /// The URI the daemon is asked to open (`CONNECT_OPEN`): transport,
    /// user, host, port and the remote driver's parameters removed, e.g.
    /// "qemu:///system" for "qemu+ssh://root@h:2222/system?keyfile=k".
    std::string name() const;

    /// The unix socket to use: `socket` when given; otherwise, for
    /// "/system", "/var/run/libvirt/libvirt-sock" (the monolithic libvirtd
    /// of Debian 12; a modular virtqemud host needs `socket=`), and for
    /// "/session", "$XDG_RUNTIME_DIR/libvirt/libvirt-sock"
    /// (`runtime_dir`, empty when unknown, gives "").
    std::string socket_path(std::string_view runtime_dir = {}) const;
};

/// Parses `text`; nullopt, with `problem` naming what is wrong ("unknown
/// transport 'tls'", "bad port '99999'", "bad percent escape"), when it is
/// no URI this client can use. Transports: none or `unix` (local), `ssh`.
/// `%XX` escapes and `+` (in parameter values, a space) are decoded.
std::optional<uri> parse_uri(std::string_view text, std::string& problem);

} // namespace localvm::libvirt
