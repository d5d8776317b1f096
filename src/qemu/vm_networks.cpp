#include "vm_networks.hpp"
#include "instance_id.hpp"

#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/error.hpp>
#include <localvm/qemu/network.hpp>

#include <boost/asio/this_coro.hpp>


namespace localvm::qemu::detail {
namespace asio = boost::asio;
namespace fs = std::filesystem;

std::vector<network_attachment> check_networks(const std::vector<network_attachment>& networks,
                                               std::string_view vm) {
    std::vector<network_attachment> out;
    for (const auto& n : networks) {
        if (auto problem = check_network_name(n.network); !problem.empty())
            throw_error(errc::invalid_argument, "networks: " + problem);
        for (const auto& o : out)
            if (o.network == n.network)
                throw_error(errc::invalid_argument,
                            "networks: network " + n.network + " is given twice");
        network_attachment c;
        c.network = n.network;
        if (n.mac.empty()) {
            c.mac = default_mac(vm, n.network);
        } else if (auto mac = normalize_mac(n.mac)) {
            c.mac = *mac;
        } else {
            throw_error(errc::invalid_argument,
                        "networks: MAC \"" + n.mac + "\" on network " + n.network +
                            " is not a unicast address like 0e:01:02:03:04:05");
        }
        for (const auto& o : out)
            if (o.mac == c.mac)
                throw_error(errc::invalid_argument, "networks: MAC " + c.mac + " is given twice");
        if (c.mac == user_nic_mac)
            throw_error(errc::invalid_argument,
                        "networks: MAC " + c.mac + " is the user-mode NIC's");
        if (!n.address.empty()) {
            std::string why;
            auto a = parse_ipv4_prefix(n.address, why);
            if (!a)
                throw_error(errc::invalid_argument,
                            "networks: address on network " + n.network + ": " + why);
            c.address = a->address + "/" + std::to_string(a->prefix);
        }
        out.push_back(std::move(c));
    }
    return out;
}

asio::awaitable<joined_networks> join_networks(const options& vm, const layout& files,
                                               std::vector<network_attachment> checked) {
    joined_networks j;
    if (checked.empty())
        co_return j;
    std::vector<cloudinit::ethernet> eths;
    eths.push_back({"user0", std::string(user_nic_mac), true, {}});
    std::vector<cloudinit::host_entry> hosts;
    auto executor = co_await asio::this_coro::executor;
    for (std::size_t i = 0; i < checked.size(); ++i) {
        const auto& c = checked[i];
        network_options no;
        no.name = c.network;
        no.data_dir = vm.data_dir;
        no.runtime_dir = vm.runtime_dir;
        no.lock_timeout = vm.lock_timeout;
        virtual_network net(executor, no);
        auto joined = co_await net.join(vm.name, files.data, files.pidfile, c.mac, c.address);
        const std::string id = "vnic" + std::to_string(i);
        j.nics.push_back({id, joined.switch_dir, c.mac});
        j.state.push_back({c.network, id, c.mac, c.address, true});
        cloudinit::ethernet e{id, c.mac, false, {}};
        if (!c.address.empty())
            e.addresses.push_back(c.address);
        eths.push_back(std::move(e));
        for (auto& [name, ip] : joined.peers) {
            bool dup = false;
            for (const auto& h : hosts)
                dup = dup || (h.name == name && h.address == ip);
            if (!dup)
                hosts.push_back({ip, name});
        }
    }
    j.network_config = cloudinit::render_network_config(eths);
    j.hosts = cloudinit::render_hosts_cloud_config(hosts);
    co_return j;
}

void add_hosts(std::optional<std::string>& vendor_data, const std::string& hosts) {
    if (hosts.empty())
        return;
    if (!vendor_data)
        vendor_data = "#cloud-config\n";
    *vendor_data += hosts;
}

void add_networks(launch_plan& launch, cloudinit::seed& seed, const joined_networks& joined,
                  const std::string& user_data) {
    if (!joined.network_config)
        return;
    launch.nics = joined.nics;
    seed.network_config = joined.network_config;
    add_hosts(seed.vendor_data, joined.hosts);
    seed.meta.instance_id = instance_id(
        seed.meta.local_hostname, user_data + '\n' + *joined.network_config + joined.hosts,
        seed.meta.instance_id);
}

} // namespace localvm::qemu::detail
