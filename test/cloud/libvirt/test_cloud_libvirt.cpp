// The real Debian cloud guest through the libvirt backend, once: a private
// libvirtd (its local socket), the image as the overlay's base, real
// cloud-init reading the NoCloud seed volume, readiness while the console
// stream is followed, a user and a marker from the user-data, the pinned
// host key, sync with chown, a clean ACPI stop, remove. Exit 77 when
// libvirtd, QEMU, unshare or setpriv is absent (or not root). (Through
// qemu+ssh the image would first be uploaded into the pool: e2e_libvirt_tiny
// covers that route on the tiny guest.)
#define BOOST_TEST_MODULE cloud_libvirt
#include <localvm/libvirt/manager.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <iostream>

#include "../../e2e/qemu/guest.hpp"
#include "../cloud_guest.hpp"
#include "daemon_fixture.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

libvirt_test::private_libvirtd* libvirtd = nullptr;

struct global_setup {
    global_setup() { libvirtd = &libvirt_test::daemon_fixture::start(false).daemon; }
};
BOOST_TEST_GLOBAL_FIXTURE(global_setup);

} // namespace

BOOST_AUTO_TEST_CASE(cloud_init_guest_through_libvirt) {
    auto g = lve2e::load_guest("cloud");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            localvm::libvirt::manager_options o;
            o.uri = libvirtd->uri();
            o.pool = "localvm-test";
            o.vm = h.options("lvcloud");
            o.vm.ssh_user = "tester"; // created by the user-data below
            o.vm.stop.powerdown_timeout = 120s;
            localvm::libvirt::manager m(ex, o);
            std::vector<std::string> log;
            m.set_output([&](std::string_view l) {
                log.emplace_back(l);
                std::cerr << l << "\n";
            });
            co_await m.create(g["DISK"]);

            localvm::start_options s;
            s.cpus = 2;
            s.memory = "1G";
            s.boot = localvm::direct_boot{g["KERNEL"], g["INITRD"], g["CMDLINE"]};
            s.ports = {{"127.0.0.1", 0, 22}};
            s.ssh_authorized_key = h.public_key;
            s.user_data = lvcloud::user_data(h.public_key, "localvm-libvirt-cloud");
            const auto t0 = std::chrono::steady_clock::now();
            co_await m.start(s);
            co_await m.wait_ready(600s);
            std::cerr << "metric libvirt_cloud_start_to_ready_ms "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - t0)
                             .count()
                      << "\n";

            auto r = co_await m.shell("cloud-init status --wait", {});
            BOOST_TEST(r.exit_status == 0, r.output);
            BOOST_TEST(r.output.find("status: done") != std::string::npos, r.output);
            r = co_await m.shell("id -un; sudo -n id -u; cat /run/marker; hostname", {});
            BOOST_TEST(r.output == "tester\n0\nlocalvm-libvirt-cloud\nlvcloud\n", r.output);
            // (wait_ready logged in with the pinned key.)
            co_await lvcloud::expect_only_the_pinned_host_key(m,
                                                              m.files().host_key.string() + ".pub");
            co_await lvcloud::expect_sync_with_chown(m, h.root);

            log.clear();
            co_await m.stop();
            BOOST_TEST(!co_await m.running());
            bool by_button = false;
            for (auto& l : log) {
                by_button = by_button || l.find("power button") != std::string::npos;
                BOOST_TEST(l.find("SIGTERM") == std::string::npos, l); // no forced end
            }
            BOOST_TEST(by_button);
            co_await m.remove();
            BOOST_TEST(!co_await m.exists());
            BOOST_TEST(!fs::exists(libvirtd->pool_dir() / "lvcloud.qcow2"));
        },
        1200s);
}
