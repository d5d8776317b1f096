// The NoCloud seed: what cloud-init reads from a volume labelled `cidata`.
// Pure rendering functions plus the one call that writes the seed image.
#pragma once

#include <localvm/atomic_file.hpp>
#include <localvm/cloudinit/iso9660.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::cloudinit {

/// The meta-data fields localvm renders.
///
/// Every value must be valid UTF-8 without control characters (C0, DEL,
/// C1, U+2028, U+2029, U+FEFF, U+FFFE, U+FFFF): such input is rejected, not
/// escaped, so that a value always renders on one line. Anything else,
/// quotes, backslashes, `:`, `#`, a leading `-`, braces, unicode, is
/// rendered as a YAML double-quoted scalar and reads back unchanged.
struct meta_data {
    /// Required, non-empty, without '/' and not "." or ".." (cloud-init
    /// uses it as a directory name). cloud-init runs its per-instance
    /// modules (users, keys, user-data scripts) only when this changes:
    /// under an unchanged instance-id it silently ignores new user-data, so
    /// give a new id (e.g. one derived from the user-data's hash) whenever
    /// the guest must apply changed user-data.
    std::string instance_id;
    /// The guest's host name; empty (the default) omits the key.
    std::string local_hostname;
    /// SSH public keys for the default user, each non-empty, one per line
    /// (e.g. "ssh-ed25519 AAAA... user@host"); none (the default) omits the
    /// key.
    std::vector<std::string> public_keys;
};

/// Renders `md` as NoCloud meta-data, keys in this order, exactly:
///
///     instance-id: "iid-example"
///     local-hostname: "vm1"
///     public-keys:
///       - "ssh-ed25519 AAAA... user@host"
///
/// each value a double-quoted scalar with only `\\` and `\"` escapes, each
/// line ending in '\n'. Throws `localvm::error` with `errc::invalid_argument`
/// naming the field (e.g. "meta-data local-hostname: contains a control
/// character (U+000A)") when a value cannot be represented as described on
/// meta_data.
std::string render_meta_data(const meta_data& md);

/// A network-config (version 2) that brings up DHCPv4 on every Ethernet
/// interface whose name starts with `e` (eth0, ens3, enp0s2: the virtio NIC
/// whatever the guest calls it).
std::string_view default_network_config() noexcept;

/// One Ethernet interface of a network-config, matched by MAC address.
struct ethernet {
    /// The key under `ethernets:` (1-15 of [A-Za-z0-9_-]), an id only: the
    /// interface is matched by MAC and keeps the name the guest gives it
    /// (there is no `set-name`).
    std::string name;
    std::string mac;                    ///< "xx:xx:xx:xx:xx:xx", lower-case hex.
    bool dhcp4 = false;                 ///< DHCPv4 on it (the user-mode NIC).
    std::vector<std::string> addresses; ///< Static "A.B.C.D/N" addresses.
};

/// Renders a network-config (version 2) for `interfaces`, in order, exactly:
///
///     version: 2
///     ethernets:
///       user0:
///         match:
///           macaddress: "52:54:00:12:34:56"
///         dhcp4: true
///       vnic0:
///         match:
///           macaddress: "0e:01:02:03:04:05"
///         dhcp4: false
///         addresses:
///           - "10.0.0.1/24"
///
/// (no `addresses:` when there are none). Throws `errc::invalid_argument`
/// naming the interface for a name, MAC or address not of the shapes above,
/// or a name given twice. The tiny test guest's init reads the same shape.
std::string render_network_config(const std::vector<ethernet>& interfaces);

/// One /etc/hosts line: an IPv4 address and a host name.
struct host_entry {
    std::string address; ///< "10.0.0.2"
    std::string name;    ///< 1-64 of [A-Za-z0-9._-] (a VM name)
};

/// Renders cloud-config lines (no `#cloud-config` header: they go after the
/// vendor-data's other keys) that append `hosts` to the guest's /etc/hosts,
/// exactly:
///
///     write_files:
///       - path: /etc/hosts
///         append: true
///         defer: true
///         content: |
///           10.0.0.2 server
///
/// `defer` writes them in cloud-init's final stage, after its own
/// `manage_etc_hosts` rewrite. A user-data `write_files` replaces this list
/// (cloud-init merges vendor-data under user-data). "" for no hosts. Throws
/// `errc::invalid_argument` naming an entry that is not of the shape above.
/// The tiny test guest's init reads the same shape.
std::string render_hosts_cloud_config(const std::vector<host_entry>& hosts);

/// An ed25519 SSH host key pair for the guest, as ssh-keygen writes it.
struct ssh_host_key {
    /// The private key file's text: "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    /// base64 lines, "-----END OPENSSH PRIVATE KEY-----\n".
    std::string private_key;
    /// The `.pub` line, "ssh-ed25519 AAAA... comment" (no newline).
    std::string public_key;
};

/// Renders vendor-data that makes `key` the guest's SSH host key, exactly:
///
///     #cloud-config
///     ssh_keys:
///       ed25519_private: |
///         -----BEGIN OPENSSH PRIVATE KEY-----
///         b3BlbnNzaC1rZXktdjEAAAAA...
///         -----END OPENSSH PRIVATE KEY-----
///       ed25519_public: "ssh-ed25519 AAAA... comment"
///
/// cloud-init merges vendor-data under the user-data (keys the user-data
/// sets win, so a user-data `ssh_keys` of its own replaces these; a
/// user-data `vendor_data: {enabled: false}` drops them), and its ssh module
/// then writes /etc/ssh/ssh_host_ed25519_key{,.pub}, deletes the image's
/// other host keys and generates none (cloud-init's `ssh_keys`,
/// `ssh_deletekeys`). The tiny test guest reads the same block for dropbear.
/// Throws `localvm::error` with `errc::invalid_argument` when the private
/// key is not an OpenSSH private key of that shape (armour lines, base64
/// lines, each ending in '\n') or the public key is not one "ssh-ed25519
/// BASE64[ comment]" line of printable text.
std::string render_host_key_vendor_data(const ssh_host_key& key);

/// Everything a NoCloud seed holds.
struct seed {
    /// user-data, written verbatim (typically "#cloud-config\n..." or a
    /// script starting "#!"); may be empty.
    std::string user_data;
    /// Rendered with render_meta_data unless raw_meta_data is set.
    meta_data meta;
    /// meta-data written verbatim instead of rendering `meta` (e.g. a file
    /// the user supplies, as cloud-localds accepts). Default: unset.
    std::optional<std::string> raw_meta_data;
    /// network-config, verbatim; unset (the default) writes no file and
    /// cloud-init falls back to DHCP on the first NIC. See
    /// default_network_config().
    std::optional<std::string> network_config;
    /// vendor-data, verbatim; unset (the default) writes no file.
    std::optional<std::string> vendor_data;
};

/// The files of the seed image: `user-data`, `meta-data` and, when set,
/// `network-config` and `vendor-data`. Throws as render_meta_data does.
std::vector<iso_file> seed_files(const seed& s);

/// Writes the seed image (volume id "cidata" unless `options` says
/// otherwise) to `out`. Throws as render_meta_data and write_iso do.
void write_seed(const seed& s, const byte_writer& out, const iso_options& options = {});

/// Writes the seed image to `path` atomically (write_iso_file: temporary
/// file in the same directory, then rename, replacing an older seed), mode
/// 0600; a seed file that already holds these bytes is left alone (a VM's
/// seed is the same from start to start until its settings change). Throws
/// `errc::invalid_argument` as render_meta_data does, before touching the
/// file system, and `errc::io_error` on write failure.
void write_seed_file(const std::filesystem::path& path, const seed& s,
                     const iso_options& options = {});

} // namespace localvm::cloudinit
