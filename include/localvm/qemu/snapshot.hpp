// Snapshots of running VMs, and clones started from them.
#pragma once

#include <localvm/manager.hpp>
#include <localvm/qemu/arguments.hpp>
#include <localvm/qemu/options.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::qemu {

/// What `manager::snapshot` does with the VM once its state is saved.
enum class after_save {
    resume, ///< The VM runs on (on its own overlay; the snapshot has a copy).
    stop,   ///< QEMU ends (QMP `quit`; recorded as stopped).
};

/// Settings of `manager::snapshot`.
struct snapshot_options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    snapshot_options() = default;
    after_save then = after_save::resume; ///< Default: the VM runs on.
    /// Deadline for writing the machine state. Default 10 minutes.
    std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

/// A file the saved machine depends on, with its content's digest.
struct file_digest {
    std::filesystem::path path; ///< Absolute.
    std::string sha256;         ///< Lower-case hex.
    /// Size and modification time (ns since the epoch) at the save: a
    /// restore that finds both unchanged trusts the digest instead of
    /// reading the file again (hashing a 64 MiB kernel costs ~0.3 s of CPU).
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
};

/// A snapshot's record (its `snapshot.json`): what a restore needs to
/// rebuild the same machine, and what `list_snapshots` shows.
struct snapshot_info {
    std::string name;                 ///< The snapshot's name (VM name rules).
    std::string source_vm;            ///< The VM it was saved from.
    std::int64_t created_at = 0;      ///< Unix time of the save, seconds.
    std::string qemu_version;         ///< e.g. "7.2.22 (Debian 1:7.2+dfsg-7+deb12u16)".
    std::uint64_t state_bytes = 0;    ///< Size of the machine state file.
    std::uint64_t disk_bytes = 0;     ///< Size of the frozen disk layer (qcow2 file).
    std::int64_t save_ms = 0;         ///< How long the guest was paused for the save.
    // The machine, as the restore must rebuild it.
    arch architecture = arch::amd64;
    accelerator accel = accelerator::tcg;
    std::string machine;              ///< Versioned machine type, e.g. "pc-q35-7.2".
    unsigned cpus = 0;
    std::uint64_t memory_mib = 0;
    std::optional<direct_boot> boot;  ///< As started (cmdline normalised).
    std::filesystem::path firmware_code; ///< Firmware boot's code image; empty with `boot`.
    network net = network::user;
    std::vector<port_forward> ports;  ///< The source's forwards (a clone binds host port 0).
    std::vector<file_digest> files;   ///< Kernel, initrd, firmware code with their digests.
    std::filesystem::path base_image; ///< The frozen layer's backing file.
    std::vector<std::string> clones;  ///< VMs made from it that still exist (filled by list/inspect).
    std::filesystem::path dir;        ///< Where it is (filled by list/inspect).
};

/// Renders a record as JSON (one object, stable key order). Pure.
std::string render_snapshot(const snapshot_info& s);
/// Parses a record; nullopt and `errc::protocol_error` in `ec` when malformed. Pure.
std::optional<snapshot_info> parse_snapshot(std::string_view json, boost::system::error_code& ec);

/// What a clone's start must match: the snapshot's machine against the
/// start options (cpus, memory, direct or firmware boot, the kernel, initrd
/// and command line) and against the files' digests now (`digest_now`
/// returns the sha256 of a recorded file, "" when it cannot be read). Returns ""
/// when they match, else a message naming each difference ("memory: the
/// snapshot has 512 MiB, the start asks for 1024 MiB; ..."). Pure.
std::string restore_mismatch(const snapshot_info& snap, unsigned cpus, std::uint64_t memory_mib,
                             const std::optional<direct_boot>& boot,
                             const std::function<std::string(const file_digest&)>& digest_now);

/// Where the snapshots of VMs with `opts.data_dir` live:
/// `<data_dir>/@snapshots` ('@' is no VM name character, so no VM's
/// directory can be there).
std::filesystem::path snapshot_root(const options& opts);

/// Every snapshot under `snapshot_root(opts)`, by name, with `dir` and
/// `clones` filled. A directory whose record cannot be read is skipped.
std::vector<snapshot_info> list_snapshots(const options& opts);

/// One snapshot. Throws `errc::not_found` when there is none named `name`,
/// `errc::invalid_argument` for a bad name, `errc::protocol_error` for a
/// damaged record.
snapshot_info inspect_snapshot(const options& opts, const std::string& name);

/// Deletes a snapshot. Throws `errc::busy` naming the VMs made from it
/// while any of them exists (remove those first), or naming the snapshots
/// saved from such VMs (their disk layer is backed by this one's; delete
/// those first), `errc::not_found`,
/// `errc::invalid_argument` for a bad name, `errc::io_error`.
void delete_snapshot(const options& opts, const std::string& name);

} // namespace localvm::qemu
