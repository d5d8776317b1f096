// The `snapshot` and `clone` commands, through the library's
// qemu::manager::snapshot / create_from_snapshot and the snapshot store
// (localvm/qemu/snapshot.hpp).
#pragma once

#include <localvm/qemu/manager.hpp>

#include <boost/asio/awaitable.hpp>

#include "cli.hpp"
#include "progress.hpp"

namespace localvm::cli {

/// `snapshot [save] NAME SNAP` on the VM `vm` (named NAME); returns the exit status.
boost::asio::awaitable<int> cmd_snapshot_save(const invocation& i, qemu::manager& vm, progress& p);

/// `snapshot list` and `snapshot delete SNAP`; returns the exit status.
boost::asio::awaitable<int> cmd_snapshot_store(const invocation& i);

/// `clone SNAP NEW` with `vm` named NEW; returns the exit status.
boost::asio::awaitable<int> cmd_clone(const invocation& i, qemu::manager& vm, progress& p);

/// `i` itself, or for `start`/`up` of a VM that is a clone (a snapshot
/// under `i.data_dir` lists it), `with_snapshot_machine(i, that snapshot)`.
invocation with_clone_defaults(const invocation& i);

} // namespace localvm::cli
