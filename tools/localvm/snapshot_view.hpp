// What the `snapshot` and `clone` commands show, and what the start of a
// clone takes from its snapshot: pure, unit tested.
#pragma once

#include <localvm/qemu/snapshot.hpp>

#include <string>
#include <vector>

#include "cli.hpp"

namespace localvm::cli {

/// `snapshot list --json`: one JSON object, one line, {"snapshots": [...]}
/// with one object per snapshot in `snaps`' order, keys in this order:
/// name, source_vm (the VM it was saved from), created_at (Unix seconds),
/// qemu_version (of the QEMU that saved it; a clone needs the same),
/// size_bytes (state_bytes + disk_bytes: what it takes on disk), state_bytes
/// (the machine state file), disk_bytes (the frozen disk layer), save_ms
/// (how long the guest was paused), machine (versioned, e.g. "pc-q35-7.2"),
/// cpus, memory_mib, clones (names of the VMs made from it that exist),
/// path (its directory).
std::string render_snapshot_list_json(const std::vector<qemu::snapshot_info>& snaps);

/// `snapshot list` for people: a heading, then one line per snapshot: NAME,
/// SOURCE, CREATED (UTC, "2026-12-01 15:04:05"), SIZE ("1.2 GiB"), QEMU
/// (its version number), CLONES ("a,b" or "-"). "no snapshots" alone when
/// there are none. Made `terminal_safe`.
std::string render_snapshot_list_table(const std::vector<qemu::snapshot_info>& snaps);

/// "2026-12-01 15:04:05" (UTC) for Unix time `t`.
std::string utc_time(std::int64_t t);

/// The `start`/`up` invocation `i` of a clone of `snap`, with what the
/// command line leaves unset taken from the snapshot: --cpus, --memory,
/// --kernel/--initrd/--cmdline (a direct boot), --net and the forwards
/// (each with host port 0, so a free one is picked). What is given stays
/// (the library refuses a machine that differs, naming the difference).
invocation with_snapshot_machine(invocation i, const qemu::snapshot_info& snap);

} // namespace localvm::cli
