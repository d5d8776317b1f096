// Options of the QEMU backend and the files one VM lives in.
#pragma once

#include <localvm/qemu/arguments.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::qemu {

/// How long each stage of `stop` may take before the next, harsher one.
struct stop_options {
    /// ACPI power button (`system_powerdown`) until the guest powers off;
    /// zero skips the button (straight to `quit`). Default 60 s.
    std::chrono::milliseconds powerdown_timeout{std::chrono::seconds(60)};
    /// Within `powerdown_timeout`, the button is pressed again this often: a
    /// guest still booting (its kernel not yet handling ACPI) loses a press,
    /// and Linux's button driver catches a later one. Zero presses once.
    /// Default 3 s.
    std::chrono::milliseconds powerdown_repeat{std::chrono::seconds(3)};
    /// When the guest ignored the power button for `powerdown_timeout`: how
    /// long it may take to power off after its guest agent accepted
    /// `guest-shutdown` (the agent itself must accept within 3 s, or stop
    /// goes on to `quit`; a guest without an agent costs those 3 s). Zero
    /// skips the agent (straight to `quit`), as does a zero
    /// `powerdown_timeout`. Default 30 s.
    std::chrono::milliseconds agent_timeout{std::chrono::seconds(30)};
    /// QMP `quit` until QEMU exits. Default 10 s.
    std::chrono::milliseconds quit_timeout{std::chrono::seconds(10)};
    /// SIGTERM until QEMU exits. Default 10 s.
    std::chrono::milliseconds term_timeout{std::chrono::seconds(10)};
    /// SIGKILL until the process is gone. Default 10 s.
    std::chrono::milliseconds kill_timeout{std::chrono::seconds(10)};
};

/// How `shell`, `sync` and `wait_ready` know the guest's SSH host key.
enum class host_key_policy {
    /// The default. `start` makes an ed25519 host key pair for the VM on its
    /// first start (`layout::host_key`, kept with the VM's data, mode 0600),
    /// hands it to the guest in the seed's vendor-data (cloud-init
    /// `ssh_keys`), and ssh accepts exactly that key
    /// (StrictHostKeyChecking=yes). A guest that presents another key fails
    /// with `errc::ssh_unreachable` saying the host key did not match. Needs
    /// a guest whose cloud-init (or the test guest's init) applies
    /// vendor-data; user-data that sets `ssh_keys` itself or disables
    /// vendor-data overrides the key, and the login then fails that way.
    pinned,
    /// For images that cannot take the key (no cloud-init): ssh trusts the
    /// first key the guest presents after each `start`
    /// (StrictHostKeyChecking=accept-new) and insists on it until the next.
    trust_on_first_use,
};

/// Configuration of one VM managed by `localvm::qemu::manager`.
struct options {
    /// VM name: 1-64 characters of [A-Za-z0-9._-], not "." or "..";
    /// anything else is `errc::invalid_argument`.
    std::string name;
    arch architecture = arch::amd64; ///< Guest architecture (arm64 needs qemu-system-aarch64).
    /// Persistent files (disk overlay, seed, UEFI variables) go to
    /// `data_dir/<name>/` (mode 0700). Default: `$XDG_DATA_HOME/localvm`,
    /// else `~/.local/share/localvm`. It must be the caller's own directory:
    /// see `make_directories`.
    std::filesystem::path data_dir;
    /// Sockets, pid file, state and logs go to `runtime_dir/<name>/` (mode
    /// 0700). Default: `$XDG_RUNTIME_DIR/localvm`, else `/tmp/localvm-<uid>`.
    /// Unix socket paths must fit in 107 bytes. It must be the caller's own
    /// directory: see `make_directories`.
    std::filesystem::path runtime_dir;
    /// `automatic` uses KVM only when it is usable and known to boot guests on
    /// this host (see accel.hpp), else TCG. Default automatic; tests use tcg.
    accelerator accel = accelerator::automatic;
    /// User-mode NAT by default (as the original); restricted for tests.
    network net = network::user;
    /// QEMU binary; empty: `qemu-system-x86_64` or `qemu-system-aarch64` from PATH.
    std::filesystem::path qemu_binary;
    /// qemu-img binary. Default: `qemu-img` from PATH.
    std::filesystem::path qemu_img = "qemu-img";
    /// Let `create` accept a base image that names other files: a backing
    /// file (a chain), an external data file (qcow2 `data-file`) or extents
    /// in other files (vmdk). The guest can read those files, so a crafted
    /// base image whose backing file is, say, `~/.ssh/id_ed25519` would hand
    /// the key to the guest. Default false: such a base is
    /// `errc::unsupported`; set it only for images you made yourself.
    bool allow_base_backing_chain = false;
    /// Virtual size of a new overlay, e.g. "20G", "512M" or bytes (see
    /// `parse_disk_size`); empty keeps the base image's size. `create`
    /// throws `errc::invalid_argument` naming anything else.
    std::string disk_size;
    /// Private key `shell` and `sync` log in with (pair of `ssh_authorized_key`).
    std::filesystem::path ssh_identity_file;
    /// Guest user `shell` and `sync` log in as. Default "debian". 1-32
    /// letters, digits, '_', '.' and '-', not starting with '-' or '.'
    /// (else `shell`, `sync` and `wait_ready` throw `errc::invalid_argument`).
    std::string ssh_user = "debian";
    /// How the guest's SSH host key is known. Default `host_key_policy::pinned`.
    host_key_policy host_key = host_key_policy::pinned;
    /// Stage timeouts of `stop`.
    stop_options stop;
    /// How long `start` waits for QEMU's monitor to answer. Default 30 s.
    std::chrono::milliseconds start_timeout{std::chrono::seconds(30)};
    /// How long a lifecycle call waits for another one on the same VM (in
    /// any process) to finish. Default 10 minutes.
    std::chrono::milliseconds lock_timeout{std::chrono::minutes(10)};
    /// With `accelerator::automatic` picking KVM: how long `start` waits for
    /// the first console output before deciding KVM hangs. Default 20 s.
    std::chrono::milliseconds kvm_watchdog{std::chrono::seconds(20)};
    /// QMP monitors for the caller's own `qmp::client`, besides the one the
    /// library uses (a QEMU socket serves one client at a time, so a caller
    /// holding the library's would stall `stop`). QEMU listens on
    /// `layout::extra_qmp_sockets` while it runs; `qmp::client::connect_lanes`
    /// over several spreads overlapping commands. 0-8; default 0.
    unsigned extra_qmp = 0;
};

/// Where one VM's files live. All paths are absolute.
struct layout {
    std::filesystem::path data;           ///< data_dir/<name>
    std::filesystem::path runtime;        ///< runtime_dir/<name> (0700)
    std::filesystem::path disk;           ///< data/disk.qcow2
    std::filesystem::path seed;           ///< data/seed.iso
    std::filesystem::path efi_vars;       ///< data/efi-vars.fd
    /// data/ssh_host_ed25519_key (and `.pub`): the guest's pinned host key.
    std::filesystem::path host_key;
    std::filesystem::path qmp_socket;     ///< runtime/qmp.sock (the library's own)
    /// runtime/qmp-1.sock ... (`options::extra_qmp` of them, for the caller).
    std::vector<std::filesystem::path> extra_qmp_sockets;
    std::filesystem::path console_socket; ///< runtime/console.sock
    std::filesystem::path agent_socket;   ///< runtime/qga.sock (the guest agent's channel)
    std::filesystem::path monitor_socket; ///< runtime/monitor.sock (HMP, with `start_options::monitor`)
    std::filesystem::path console_log;    ///< runtime/console.log
    std::filesystem::path qemu_log;       ///< runtime/qemu.log (QEMU's stderr)
    std::filesystem::path pidfile;        ///< runtime/qemu.pid (QEMU holds its lock)
    std::filesystem::path state;          ///< runtime/state.json
    std::filesystem::path lock;           ///< runtime/lock (serialises lifecycle calls)
    std::filesystem::path exit_status;    ///< runtime/exit-status (written when QEMU ends)
    std::filesystem::path known_hosts;    ///< runtime/known_hosts (per-VM, reset each start)
    /// runtime/ssh.sock: the socket of the ssh control master that
    /// `wait_ready`, `shell` and `sync` share (`ssh::target::control_path`)
    /// with `host_key_policy::pinned`; none under first-use trust or when
    /// this path is longer than `ssh::max_control_path`.
    std::filesystem::path ssh_control;
};

/// Checks a VM name; returns a message naming the problem, or "" when valid.
/// The same rules hold for network and snapshot names: `what` is how the
/// message names it ("VM name", "network name").
std::string check_name(std::string_view name, std::string_view what = "VM name");

/// The directory holding every VM's data directory: `data_dir` made
/// absolute, or when empty the default of `options::data_dir`.
std::filesystem::path data_root(const std::filesystem::path& data_dir);

/// The directory holding every VM's runtime directory: `runtime_dir` made
/// absolute, or when empty the default of `options::runtime_dir`.
std::filesystem::path runtime_root(const std::filesystem::path& runtime_dir);

/// Creates the VM's data and runtime directories when missing and makes
/// sure they are the caller's alone: the top directories (`data_dir`,
/// `runtime_dir`, defaults applied) and `<name>` below each are created with
/// mode 0700, then opened without following symbolic links and refused
/// unless each is a real directory owned by the effective uid and not
/// writable by group or others (a sticky top directory, like /tmp, passes;
/// a predictable `/tmp/localvm-<uid>` may have
/// been made first by another user, or be a symbolic link). The `<name>`
/// directories end with mode 0700 (an older one with mode 0755 is
/// tightened). Missing parents of the top directories are created with mode
/// 0700 and are not checked. Every lifecycle call that writes runs this
/// first. Throws `errc::unsupported` naming the path, its owner and its mode
/// (or what it is instead of a directory), `errc::io_error` when a
/// directory cannot be made.
void make_directories(const layout& files);

/// The layout for `opts` (defaults applied). Throws `errc::invalid_argument`
/// for a bad name, `extra_qmp` above 8, or socket paths longer than a unix
/// socket allows.
layout make_layout(const options& opts);

} // namespace localvm::qemu
