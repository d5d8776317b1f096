// Every VM under the data and runtime directories, as `localvm list` shows them.
#pragma once

#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/options.hpp>

#include <boost/asio/awaitable.hpp>

#include <string>
#include <vector>

namespace localvm::qemu {

/// One VM found by `list_vms`.
struct vm_listing {
    std::string name; ///< The VM's name (its directory's).
    status st;        ///< As `manager::snapshot` gives it.
    layout files;     ///< Where its files are.
};

/// Every VM that has a directory under `defaults.data_dir` or
/// `defaults.runtime_dir` (defaults applied as for `manager`), sorted by
/// name; entries whose names are no valid VM name are skipped. Each is
/// judged as `manager::snapshot` does: from its disk, QEMU's pid file lock
/// and its state file, without waiting, connecting or writing anything, so
/// the cost is a few file reads per VM. `defaults.name` is ignored; the
/// other options (the directories) apply to every VM. Missing directories
/// mean no VMs. Throws `errc::invalid_argument` for directories whose
/// paths make socket paths too long (see `make_layout`). Cancellation: none
/// needed (it never suspends).
boost::asio::awaitable<std::vector<vm_listing>> list_vms(options defaults);

} // namespace localvm::qemu
