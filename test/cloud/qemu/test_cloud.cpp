#define BOOST_TEST_MODULE cloud_guest
#include "../../e2e/qemu/guest.hpp"
#include "../cloud_guest.hpp"

#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/network.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>


namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::qemu::end_reason;
using namespace std::chrono_literals;

// A real Debian image with real cloud-init reading localvm's NoCloud seed.
BOOST_AUTO_TEST_CASE(cloud_init_guest_lifecycle) {
    auto g = lve2e::load_guest("cloud");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto o = h.options("cloud");
            o.ssh_user = "tester"; // created by the user-data below
            o.stop.powerdown_timeout = 120s;
            localvm::qemu::manager m(ex, o);
            std::vector<std::string> log;
            m.set_output([&](std::string_view l) { log.emplace_back(l); });
            co_await m.create(g["DISK"]);

            localvm::start_options s;
            s.cpus = 2;
            s.memory = "1G";
            s.boot = localvm::direct_boot{g["KERNEL"], g["INITRD"], g["CMDLINE"]};
            s.ports = {{"127.0.0.1", 0, 22}};
            s.ssh_authorized_key = h.public_key; // meta-data public-keys: the default user
            s.user_data = lvcloud::user_data(h.public_key, "localvm-cloud-marker");
            // A virtual network: real cloud-init applies the seed's
            // network-config (a static address matched by MAC, the user-mode
            // NIC on DHCP) and the peers' /etc/hosts lines.
            localvm::qemu::network_options no;
            no.name = "lan";
            no.data_dir = o.data_dir;
            no.runtime_dir = o.runtime_dir;
            localvm::qemu::virtual_network lan(ex, no);
            co_await lan.create();
            co_await lan.reserve("peer", h.root / "data" / "peer", "10.9.0.6/24");
            localvm::network_attachment nic;
            nic.network = "lan";
            nic.address = "10.9.0.5/24";
            s.networks = {nic};
            co_await m.start(s);
            co_await m.wait_ready(600s);

            auto r = co_await m.shell("cloud-init status --wait", {});
            BOOST_TEST(r.exit_status == 0, r.output);
            BOOST_TEST(r.output.find("status: done") != std::string::npos, r.output);
            r = co_await m.shell("id -un; sudo -n id -u; cat /run/marker; hostname", {});
            BOOST_TEST(r.output == "tester\n0\nlocalvm-cloud-marker\ncloud\n", r.output);
            r = co_await m.shell("ip -4 -o addr; getent hosts peer", {});
            BOOST_TEST(r.output.find("inet 10.9.0.5/24") != std::string::npos, r.output);
            BOOST_TEST(r.output.find("10.9.0.6 ") != std::string::npos, r.output);
            BOOST_TEST(r.output.ends_with(" peer\n"), r.output);

            // (wait_ready logged in with the pinned key.)
            co_await lvcloud::expect_only_the_pinned_host_key(m,
                                                              m.files().host_key.string() + ".pub");
            co_await lvcloud::expect_sync_with_chown(m, h.root);

            log.clear();
            co_await m.stop();
            for (auto& l : log)
                BOOST_TEST(l.find("quit") == std::string::npos, l); // a clean guest shutdown
            auto st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->last_end == end_reason::stopped));
            BOOST_TEST(st.state->last_end_detail == "exited 0");
            co_await m.remove();
            co_await lan.remove();
        },
        1200s);
}
