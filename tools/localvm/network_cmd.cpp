#include "network_cmd.hpp"

#include <localvm/error.hpp>
#include <localvm/qemu/network.hpp>

#include <boost/asio/this_coro.hpp>

#include <cstdio>

#include "report.hpp"

namespace localvm::cli {

boost::asio::awaitable<int> cmd_network(const invocation& i) {
    auto executor = co_await boost::asio::this_coro::executor;
    auto options_for = [&](const std::string& name) {
        qemu::network_options o;
        o.name = name;
        o.data_dir = i.data_dir;
        o.runtime_dir = i.runtime_dir;
        return o;
    };
    if (i.network_action == "list") {
        std::vector<std::pair<std::string, qemu::network_status>> all;
        for (const auto& name : qemu::list_networks(i.data_dir)) {
            qemu::virtual_network net(executor, options_for(name));
            all.emplace_back(name, co_await net.query());
        }
        std::fputs(render_network_list(all).c_str(), stdout);
        co_return 0;
    }
    qemu::virtual_network net(executor, options_for(i.network));
    if (i.network_action == "create") {
        co_await net.create();
        if (i.level != verbosity::quiet)
            std::fprintf(stderr, "network %s created\n", i.network.c_str());
    } else {
        // As `delete` of a VM: leftovers are cleared, a missing one is an error.
        bool existed = co_await net.exists();
        co_await net.remove();
        if (!existed)
            throw_error(errc::not_found, "network " + i.network + " does not exist");
        if (i.level != verbosity::quiet)
            std::fprintf(stderr, "network %s deleted\n", i.network.c_str());
    }
    co_return 0;
}

} // namespace localvm::cli
