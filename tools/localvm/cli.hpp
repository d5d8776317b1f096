// The localvm command line: what the user asked for, parsed without side
// effects (no file is read, nothing is run), so that it can be unit tested.
#pragma once

#include <localvm/image/digest.hpp>
#include <localvm/manager.hpp>
#include <localvm/qemu/arguments.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace localvm::cli {

/// The subcommands, plus `usage` (help for the whole program) and `version`.
enum class command {
    usage,
    version,
    create,
    start,
    up,
    status,
    shell,
    console,
    monitor, ///< QEMU's human monitor (HMP), for a VM started with --monitor.
    sync,
    copy,    ///< `cp`: files between the host and a VM, `NAME:PATH` naming the VM's side.
    forward, ///< Add, remove or show the forwards of a running VM.
    list,    ///< Every VM under the data and runtime directories.
    stop,
    remove, ///< `delete` on the command line.
    cidata,
    image,    ///< `image pull|list|rm`: the image cache.
    network,  ///< `network create|delete|list`: virtual networks.
    snapshot, ///< `snapshot [save] NAME SNAP | list | delete SNAP`: saved running VMs.
    clone,    ///< `clone SNAP NEW`: a new VM restored from a snapshot on its start.
};

/// How much the command says on stderr.
enum class verbosity {
    quiet,   ///< Errors only.
    normal,  ///< A status line (terminal) or plain stage lines, and the timeline.
    verbose, ///< Also lifecycle messages, QEMU's stderr and the serial console.
};

/// One parsed command line. Fields a subcommand does not take keep their
/// defaults; "unset" means the library's default applies.
struct invocation {
    command cmd = command::usage;
    bool help = false;                 ///< `--help`: print the help of `cmd` and exit 0.
    std::string name;                  ///< VM name (checked with qemu::check_name).
    std::filesystem::path data_dir;    ///< --data-dir; empty: the library's XDG default.
    std::filesystem::path runtime_dir; ///< --runtime-dir; empty: the library's XDG default.
    verbosity level = verbosity::normal;

    // The backend (VM commands): --connect URI runs the VM through that
    // libvirt daemon, in storage pool --pool; unset: the QEMU backend (or
    // LOCALVM_CONNECT, see `connect_uri`).
    std::string connect; ///< --connect URI (checked with libvirt::parse_uri).
    std::string pool;    ///< --pool NAME; empty: the libvirt backend's default ("default").

    // Logging in (start, up, shell, sync).
    std::filesystem::path identity; ///< --identity; empty: DATA/NAME/id_ed25519, made on first use.
    std::string user;               ///< --user; empty: the library's default.

    // Creating (create, up).
    std::filesystem::path base; ///< --base image of the disk overlay.
    std::string disk_size;      ///< --disk-size; empty keeps the base image's size.

    // Booting (start, up).
    std::optional<qemu::accelerator> accel; ///< --accel auto|kvm|tcg.
    std::optional<qemu::network> net;       ///< --net user|restricted.
    std::filesystem::path qemu_binary;      ///< --qemu.
    std::filesystem::path kernel;           ///< --kernel: direct boot when set.
    std::filesystem::path initrd;           ///< --initrd.
    std::string cmdline;                    ///< --cmdline.
    std::optional<unsigned> cpus;           ///< --cpus.
    std::string memory;                     ///< --memory; empty: the library's default.
    std::vector<port_forward> forwards;     ///< --forward; none: 127.0.0.1:0 -> 22.
    bool monitor = false;                   ///< --monitor: start_options::monitor.
    std::filesystem::path user_data;        ///< --user-data FILE (start, up, cidata).
    /// --network NAME[=ADDR/PREFIX], repeatable: start_options::networks.
    std::vector<network_attachment> networks;

    // up
    std::chrono::seconds timeout{300};   ///< --timeout: for SSH to work.
    std::filesystem::path timeline_file; ///< --timeline FILE (JSON).

    // shell, up: the words after `--`, joined with spaces into one remote command.
    std::vector<std::string> remote_command;

    // status, list
    bool json = false; ///< --json

    // sync, cp
    std::string from;                  ///< The source: a host path, or with `from_guest` a guest path.
    std::string to;                    ///< The destination: a guest path, or with `from_guest` a host path.
    bool from_guest = false;           ///< sync --from-guest; cp NAME:PATH HOST_PATH.
    std::string chown;                 ///< --chown USER:GROUP.
    std::vector<std::string> excludes; ///< --exclude PATTERN, repeatable.

    // forward
    std::optional<port_forward> forward_spec; ///< [ADDR:]HOST:GUEST; none: show the forwards.
    bool remove_forward = false;              ///< --remove.

    // cidata
    std::filesystem::path output;                ///< The ISO to write.
    std::filesystem::path meta_data;             ///< Verbatim meta-data file (else rendered).
    std::filesystem::path network_config;        ///< --network-config FILE.
    std::filesystem::path vendor_data;           ///< --vendor-data FILE.
    std::string instance_id;                     ///< --instance-id; default "iid-local01".
    std::string hostname;                        ///< --hostname.
    std::vector<std::filesystem::path> ssh_keys; ///< --ssh-key FILE (public keys), repeatable.

    // image pull|list|rm, and create/up --image
    std::string image_action;  ///< image: "pull", "list" or "rm".
    std::string image;         ///< image pull: URL; image rm: URL or KEY; create/up: --image URL.
    std::optional<image::digest> image_digest; ///< --sha256 / --sha512.
    std::filesystem::path cache_dir;           ///< --cache-dir; empty: the library's default.
    std::filesystem::path ca_file;             ///< --ca-file: an extra trusted CA (PEM).

    // network create|delete|list
    std::string network_action; ///< "create", "delete" or "list".
    std::string network;        ///< The network's name (create, delete).

    // snapshot [save]|list|delete, clone
    std::string snapshot_action;  ///< snapshot: "save", "list" or "delete".
    std::string snapshot;         ///< The snapshot's name (snapshot save|delete, clone).
    bool stop_after_save = false; ///< snapshot --stop: QEMU ends after the save.

    // stop
    /// stop --timeout: how long the guest has to power off after the ACPI
    /// power button before QMP quit (qemu::stop_options::powerdown_timeout);
    /// unset: the library's default (60 s).
    std::optional<std::chrono::seconds> powerdown_timeout;
};

/// A command line that cannot be run: exit status 2.
struct usage_error {
    std::string message;          ///< One line, e.g. "start: --cpus: expected 1..255, got \"x\"".
    command cmd = command::usage; ///< The subcommand, for "try 'localvm CMD --help'".
};

/// One side of `localvm cp`: a path in a VM (`NAME:PATH`) or on the host.
struct copy_endpoint {
    std::string vm;   ///< The VM's name; empty for a host path.
    std::string path; ///< The path (in the VM, or on the host).
};

/// Reads a `cp` operand as `limactl copy` does: `NAME:PATH` when the text
/// before the first ':' is a valid VM name (`qemu::check_name`), else a
/// host path. So "/srv/a:b", "./a:b" and "a/b:c" are host paths, and a host
/// file named "vm:x" in the current directory is written "./vm:x". Pure.
copy_endpoint parse_copy_endpoint(std::string_view text);

/// Parses the arguments after the program name. Pure.
std::variant<invocation, usage_error> parse(std::span<const std::string> args);

/// The libvirt URI the command runs through: `--connect` when given, else
/// `env_connect` (the value of LOCALVM_CONNECT; null or empty: unset); ""
/// means the QEMU backend. Throws `errc::invalid_argument` naming
/// LOCALVM_CONNECT when its value is not a libvirt URI. Pure.
std::string connect_uri(const invocation& i, const char* env_connect);

/// The `--help` text of `cmd` (usage, what it does, its options with the
/// library's defaults); `command::usage` gives the program's overview.
std::string help_text(command cmd);

/// The subcommand's word ("delete" for `command::remove`).
std::string_view command_word(command cmd) noexcept;

/// The remote command `shell`/`up` run: the words after `--` joined by
/// spaces, as ssh does (the guest's shell splits them again).
std::string joined_command(const std::vector<std::string>& words);

} // namespace localvm::cli
