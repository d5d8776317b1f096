// Internal: the files that tie clones to snapshots, and the restore steps
// of a clone's start (snapshot_save.cpp, which also holds manager::impl's
// save_snapshot and create_clone).
#pragma once

#include <localvm/qemu/options.hpp>
#include <localvm/qemu/snapshot.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace localvm::qmp {
class client;
}

namespace localvm::qemu::detail {

/// Reads a running VM's machine from QEMU's argv (as `command_line` made
/// it) into `into`: machine alias, accelerator, cpus, memory, direct boot
/// (kernel, initrd, command line) or the firmware code, restricted
/// networking. Returns "" or what could not be read. Pure.
std::string machine_from_argv(const std::vector<std::string>& argv, snapshot_info& into);

/// The VMs registered in `snapshot_dir/clones/` whose disk still exists
/// (stale entries, of VMs deleted without `remove`, are pruned). Sorted.
std::vector<std::string> live_clones(const std::filesystem::path& snapshot_dir);

/// The sha256 (hex) of a file's content; "" when it cannot be read.
std::string file_sha256(const std::filesystem::path& p);

/// `p` with its sha256, size and modification time; sha256 "" when it
/// cannot be read.
file_digest digest_file(const std::filesystem::path& p);

/// The sha256 of a recorded file now: the recorded one when its size and
/// modification time are unchanged, else read again ("" when unreadable).
std::string digest_now(const file_digest& recorded);

/// A clone's origin: which snapshot (record and directory) its disk and
/// state come from. Read from `<data>/origin.json`.
struct restore_source {
    snapshot_info snap;
    std::filesystem::path dir;
    /// The clone's first start got as far as loading the state (its guest
    /// has run since, or may have): later starts boot its own disk cold,
    /// since the saved memory no longer matches that disk.
    bool restored = false;
};

/// The origin of the VM at `files` when it is a clone; nullopt when it is
/// not. Throws `errc::not_found` when its snapshot is gone,
/// `errc::protocol_error` for a damaged record.
std::optional<restore_source> read_origin(const layout& files);

/// Records in `<data>/origin.json` that the clone at `files` was restored
/// (see `restore_source::restored`). Called after its state is loaded and
/// before `cont`: from then on its disk may change. Throws as
/// `write_file_atomic`, and as `read_origin`.
void mark_restored(const layout& files);

/// Whether the VM at `files` is a clone (its first start restores a snapshot).
/// Reads no record: never throws.
bool is_clone(const layout& files) noexcept;

/// Throws `errc::unsupported` naming every difference between the
/// snapshot and what a start asks for (see `restore_mismatch`).
void check_restore(const restore_source& from, unsigned cpus, std::uint64_t memory_mib,
                   const std::optional<direct_boot>& boot);

/// Makes `plan` the snapshot's machine: versioned machine type, `-incoming
/// defer`, accelerator, boot or firmware code.
void apply_restore(launch_plan& plan, const restore_source& from);

/// Loads the snapshot's machine state into a QEMU started from a plan that
/// `apply_restore` made, after checking its version against the record
/// (`errc::unsupported` naming both). Throws as `qmp::migrate_from_fd`.
boost::asio::awaitable<void> load_state(qmp::client& c, const layout& files,
                                        std::chrono::milliseconds timeout);

/// Unregisters the VM at `files` from its snapshot (for `remove`); no-op
/// for a VM that is no clone.
void forget_clone(const options& opts, const layout& files);

} // namespace localvm::qemu::detail
