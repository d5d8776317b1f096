// A guest booted once per test program and saved as a snapshot; each test
// then runs on a fresh clone of it, restored in seconds instead of booted
// (see `qemu::manager::snapshot` and `create_from_snapshot`).
#pragma once

#include <localvm/testing/vm.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <string>

namespace localvm::testing {

/// What a `shared_snapshot` boots once and saves.
struct snapshot_source {
    /// The VM booted once (create, start, `wait_ready` within its
    /// `ready_timeout`), as `vm_set::add` takes it. Its name also names the
    /// snapshot and, with a number, the clones ("cloud" gives clones
    /// "cloud-1", "cloud-2", ...): leave room for that within the VM name
    /// rules. Its `start` must not join virtual networks (the clones would
    /// need the same addresses); `snapshot` must be empty.
    vm_spec vm;
    /// Runs on the booted VM before the save, e.g. waiting for cloud-init to
    /// finish or writing what every test expects to find; default none. A
    /// throw fails the shared boot.
    std::function<boost::asio::awaitable<void>(testing::vm&)> prepare;
    /// Adjusts each clone's spec before it is added (e.g. `options.extra_qmp`,
    /// `options.stop`); the clone's `start` must stay the source's (the
    /// restore checks cpus, memory and boot). Default none.
    std::function<void(vm_spec&)> clone;
    /// Deadline for the boot, `prepare` and the save together, counted apart
    /// from the deadline of the test that needed them first. Default 20 min.
    std::chrono::milliseconds boot_deadline = std::chrono::minutes(20);
};

/// One guest booted and saved once, at the first `run` (not before: listing
/// or filtering tests boots nothing), and a fresh clone of it for each
/// `run`: created from the snapshot, started (a restore), `wait_ready`, the
/// body, then stopped and deleted, whatever the body did. The source VM is
/// stopped by the save and deleted right after it.
///
/// A failed shared boot fails the `run` that needed it with its error (code
/// and message, and the VMs' console and QEMU tails), and every later `run`
/// at once with the same code and a message that says the shared boot failed
/// earlier and why: no test waits for a boot that already failed, and none
/// boots again.
///
/// Everything lives in one `vm_set` (its temporary directory and key pair);
/// `teardown` (or the destructor) deletes what is left in order: clones,
/// then the snapshots (those saved from clones first), then the set.
class shared_snapshot {
public:
    /// Makes the set (see `vm_set()`); boots nothing. Throws
    /// `errc::invalid_argument` for an invalid source (bad name, networks,
    /// a `snapshot`), and what `vm_set()` throws.
    explicit shared_snapshot(snapshot_source source);
    /// `teardown`; never throws.
    ~shared_snapshot();
    shared_snapshot(const shared_snapshot&) = delete;
    shared_snapshot& operator=(const shared_snapshot&) = delete;

    /// Boots, prepares and saves the source unless that was done (or failed)
    /// before; see the class comment for failures. Throws `localvm::error`.
    void ensure_saved();

    /// `ensure_saved`, then a fresh clone for `body`, within `deadline`
    /// (the clone's restore and `wait_ready` included, not the shared boot);
    /// the clone is stopped and deleted afterwards, also when the body
    /// threw. Throws as `vm_set::run` (the body's failure with the clone's
    /// console and QEMU tails); a clone that cannot be deleted is reported
    /// through `on_failure`.
    void run(std::function<boost::asio::awaitable<void>(testing::vm&)> body,
             std::chrono::milliseconds deadline = std::chrono::minutes(5),
             const std::string& what = "VM test body");

    /// The snapshot's name (the source VM's name).
    const std::string& snapshot_name() const noexcept { return source_.vm.name; }
    /// How long the shared boot (boot, prepare, save) took; zero before it
    /// succeeded.
    std::chrono::milliseconds boot_time() const noexcept { return boot_time_; }
    /// The set that holds the source and the clones (for its `root`, `key`
    /// and `public_key`, and `on_failure` / `failed_check`).
    vm_set& set() noexcept { return set_; }

    /// Deletes the clones left, then every snapshot under the set's data
    /// directory (snapshots saved from clones before the ones they depend
    /// on), then the set (`vm_set::teardown`). Idempotent; never throws;
    /// returns what went wrong (empty when all went well).
    std::string teardown();

private:
    snapshot_source source_;
    vm_set set_;
    bool saved_ = false;
    std::exception_ptr boot_failure_;
    std::chrono::milliseconds boot_time_{0};
    unsigned clones_ = 0;
    bool torn_down_ = false;
};

} // namespace localvm::testing
