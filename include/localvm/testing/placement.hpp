// Where the test kit runs each VM of a set given several libvirt hosts:
// a pure function of what the hosts report and what the VMs ask for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace localvm::testing {

/// One host of a pool, as its libvirt daemon reports it (node info and
/// node free memory), plus what this set already placed there.
struct host_capacity {
    std::string name;                     ///< For diagnostics, e.g. its URI.
    std::uint64_t total_memory_bytes = 0; ///< Node info's memory.
    std::uint64_t free_memory_bytes = 0;  ///< Node free memory when asked.
    unsigned cpus = 0;                    ///< Node info's active CPUs.
    /// vCPUs of the set's VMs already there (placed by an earlier call):
    /// counted as placed. (Their memory is in `free_memory_bytes` already.)
    unsigned cpus_in_use = 0;
};

/// What one VM asks of its host.
struct vm_demand {
    std::string name;               ///< For diagnostics.
    std::uint64_t memory_bytes = 0; ///< Guest memory.
    unsigned cpus = 1;              ///< Virtual CPUs.
};

/// Places the VMs in order, each on the host with the most free capacity
/// at that moment, counting the VMs placed before it: a host's free share
/// is the smaller of its free memory share ((free - placed memory) /
/// total) and its free CPU share (1 - placed vCPUs / CPUs; below zero
/// when overcommitted, which is allowed), and the largest share wins (the
/// first such host on a tie). A host whose free memory (less what was
/// placed there) is smaller than the VM's memory is not a candidate.
/// Returns the host index of each VM. Throws `localvm::error`
/// (`errc::invalid_argument`) when there is no host, and (`errc::busy`)
/// naming the VM and each host's free memory when a VM fits on none. Pure.
std::vector<std::size_t> place(const std::vector<host_capacity>& hosts,
                               const std::vector<vm_demand>& vms);

} // namespace localvm::testing
