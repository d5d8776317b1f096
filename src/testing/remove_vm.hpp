// Internal to the test kit: the teardown of one test VM, shared by
// `vm_set` and `shared_snapshot`.
#pragma once

#include <localvm/qemu/options.hpp>

#include <string>

namespace localvm::testing::detail {

/// Stops (no ACPI wait) and deletes the VM `opts` names, within a minute;
/// when that fails, SIGKILLs its QEMU (none may outlive a test). Never
/// throws; each failure is appended to `problems` as a line.
void remove_vm(std::string& problems, qemu::options opts);

} // namespace localvm::testing::detail
