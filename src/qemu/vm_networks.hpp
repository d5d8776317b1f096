// Internal: what `qemu::manager` does for `start_options::networks` (checks,
// joining the networks, the seed's network-config and hosts), kept out of
// the lifecycle code.
#pragma once

#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/manager.hpp>
#include <localvm/qemu/arguments.hpp>
#include <localvm/qemu/options.hpp>
#include <localvm/qemu/state.hpp>

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <vector>

namespace localvm::qemu::detail {

/// `networks` checked for VM `vm`: each network name valid and given once,
/// each MAC normalised (empty: `default_mac`), each address parsed ("/24"
/// added when missing). Pure; throws `errc::invalid_argument` naming the
/// entry.
std::vector<network_attachment> check_networks(const std::vector<network_attachment>& networks,
                                               std::string_view vm);

/// What joining gives the launch plan, the state file and the seed.
struct joined_networks {
    std::vector<virtual_nic> nics;       ///< For `launch_plan::nics`.
    std::vector<nic_state> state;        ///< For `vm_state::nics`.
    std::optional<std::string> network_config; ///< The seed's network-config; unset without networks.
    std::string hosts;                   ///< Cloud-config lines for the vendor-data ("" for none).
};

/// Joins each checked network (`virtual_network::join`: the switch runs
/// afterwards) in order, NIC ids vnic0, vnic1, ... Throws as `join` does.
boost::asio::awaitable<joined_networks> join_networks(const options& vm, const layout& files,
                                                      std::vector<network_attachment> checked);

/// Appends `hosts` to `vendor_data` (a `#cloud-config` document, made when
/// unset). Unchanged when `hosts` is empty.
void add_hosts(std::optional<std::string>& vendor_data, const std::string& hosts);

/// Puts what joining gave into the plan: the NICs into `launch`, the
/// network-config and the hosts lines into `seed`, and (with networks) a
/// new instance-id derived from the old one, `user_data` and both, so that
/// cloud-init applies a changed network. Unchanged without networks.
void add_networks(launch_plan& launch, cloudinit::seed& seed, const joined_networks& joined,
                  const std::string& user_data);

} // namespace localvm::qemu::detail
