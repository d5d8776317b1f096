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
    /// QMP `quit` until QEMU exits. Default 10 s.
    std::chrono::milliseconds quit_timeout{std::chrono::seconds(10)};
    /// SIGTERM until QEMU exits. Default 10 s.
    std::chrono::milliseconds term_timeout{std::chrono::seconds(10)};
    /// SIGKILL until the process is gone. Default 10 s.
    std::chrono::milliseconds kill_timeout{std::chrono::seconds(10)};
};

/// Configuration of one VM managed by `localvm::qemu::manager`.
struct options {
    /// VM name: 1-64 characters of [A-Za-z0-9._-], not "." or "..";
    /// anything else is `errc::invalid_argument`.
    std::string name;
    arch architecture = arch::amd64; ///< Guest architecture (arm64 needs qemu-system-aarch64).
    /// Persistent files (disk overlay, seed, UEFI variables) go to
    /// `data_dir/<name>/`. Default: `$XDG_DATA_HOME/localvm`, else `~/.local/share/localvm`.
    std::filesystem::path data_dir;
    /// Sockets, pid file, state and logs go to `runtime_dir/<name>/` (mode
    /// 0700). Default: `$XDG_RUNTIME_DIR/localvm`, else `/tmp/localvm-<uid>`.
    /// Unix socket paths must fit in 107 bytes.
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
    /// Virtual size of a new overlay, e.g. "20G"; empty keeps the base image's size.
    std::string disk_size;
    /// Private key `shell` and `sync` log in with (pair of `ssh_authorized_key`).
    std::filesystem::path ssh_identity_file;
    /// Guest user `shell` and `sync` log in as. Default "debian".
    std::string ssh_user = "debian";
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
    std::filesystem::path qmp_socket;     ///< runtime/qmp.sock (the library's own)
    /// runtime/qmp-1.sock ... (`options::extra_qmp` of them, for the caller).
    std::vector<std::filesystem::path> extra_qmp_sockets;
    std::filesystem::path console_socket; ///< runtime/console.sock
    std::filesystem::path monitor_socket; ///< runtime/monitor.sock (HMP, with `start_options::monitor`)
    std::filesystem::path console_log;    ///< runtime/console.log
    std::filesystem::path qemu_log;       ///< runtime/qemu.log (QEMU's stderr)
    std::filesystem::path pidfile;        ///< runtime/qemu.pid (QEMU holds its lock)
    std::filesystem::path state;          ///< runtime/state.json
    std::filesystem::path lock;           ///< runtime/lock (serialises lifecycle calls)
    std::filesystem::path exit_status;    ///< runtime/exit-status (written when QEMU ends)
    std::filesystem::path known_hosts;    ///< runtime/known_hosts (per-VM, reset each start)
};

/// Checks a VM name; returns a message naming the problem, or "" when valid.
std::string check_name(std::string_view name);

/// The layout for `opts` (defaults applied). Throws `errc::invalid_argument`
/// for a bad name, `extra_qmp` above 8, or socket paths longer than a unix
/// socket allows.
layout make_layout(const options& opts);

} // namespace localvm::qemu
