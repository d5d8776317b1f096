#include <localvm/error.hpp>
#include <localvm/testing/placement.hpp>

#include <algorithm>
#include <optional>

namespace localvm::testing {

namespace {

std::string mib(std::uint64_t bytes) {
    return std::to_string(bytes / (1024 * 1024)) + " MiB";
}

} // namespace

std::vector<std::size_t> place(const std::vector<host_capacity>& hosts,
                               const std::vector<vm_demand>& vms) {
    if (hosts.empty())
        throw_error(errc::invalid_argument, "no host to place the VMs on");
    std::vector<std::uint64_t> placed_memory(hosts.size(), 0);
    std::vector<std::uint64_t> placed_cpus;
    for (const auto& h : hosts)
        placed_cpus.push_back(h.cpus_in_use);
    std::vector<std::size_t> where;
    where.reserve(vms.size());
    for (const auto& vm : vms) {
        std::optional<std::size_t> best;
        double best_share = 0;
        for (std::size_t h = 0; h < hosts.size(); ++h) {
            const auto& host = hosts[h];
            const auto used = placed_memory[h];
            const auto free = host.free_memory_bytes > used ? host.free_memory_bytes - used : 0;
            if (free < vm.memory_bytes)
                continue;
            const double memory_share =
                host.total_memory_bytes ? double(free) / double(host.total_memory_bytes) : 0.0;
            const double cpu_share =
                host.cpus ? 1.0 - double(placed_cpus[h]) / double(host.cpus) : 0.0;
            const double share = std::min(memory_share, cpu_share);
            if (!best || share > best_share) {
                best = h;
                best_share = share;
            }
        }
        if (!best) {
            std::string why = "no host has room for VM '" + vm.name + "' (" + mib(vm.memory_bytes) +
                              "); free memory:";
            for (std::size_t h = 0; h < hosts.size(); ++h) {
                const auto free = hosts[h].free_memory_bytes > placed_memory[h]
                                      ? hosts[h].free_memory_bytes - placed_memory[h]
                                      : 0;
                why += (h ? ", " : " ") + hosts[h].name + " " + mib(free);
            }
            throw_error(errc::busy, why);
        }
        placed_memory[*best] += vm.memory_bytes;
        placed_cpus[*best] += vm.cpus;
        where.push_back(*best);
    }
    return where;
}

} // namespace localvm::testing
