// The test kit's host pool: two libvirt "hosts", the private libvirtd's
// local socket and `qemu+ssh://root@127.0.0.1:PORT/...` through an sshd on
// a loopback port in front of the same daemon (a remote host: pool copies,
// SSH through the jump host), four tiny guests placed across both by what
// the daemon reports, booted at once; a test body that does not care where
// each runs; teardown on every host. Also what the daemon reports for
// placement (node info, free memory) against /proc. Exit 77 when libvirtd,
// QEMU, sshd, nc, unshare or setpriv is absent (or not root).
#define BOOST_TEST_MODULE e2e_libvirt_pool
#include <localvm/libvirt/client.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/run.hpp>

#include <boost/test/unit_test.hpp>

#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "daemon_fixture.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lt = localvm::testing;
using namespace std::chrono_literals;

namespace {

libvirt_test::daemon_fixture* home = nullptr;

struct global_setup {
    global_setup() { home = &libvirt_test::daemon_fixture::start(true); }
};
BOOST_TEST_GLOBAL_FIXTURE(global_setup);

lt::vm_spec tiny(const std::string& name) {
    lt::vm_spec s;
    s.name = name;
    s.start.cpus = 1;
    s.start.memory = "512M";
    s.start.boot = lt::guest_image::load("tiny").boot();
    return s;
}

std::uint64_t meminfo_kib(const std::string& key) {
    std::ifstream in("/proc/meminfo");
    std::string k;
    std::uint64_t v = 0;
    std::string unit;
    while (in >> k >> v >> unit)
        if (k == key + ":")
            return v;
    return 0;
}

// The pool's volumes but the shared copies of this host's files that a
// remote connection uploads (`localvm-sha256-*`, kept for reuse).
std::vector<std::string> vm_volumes(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) {
        auto n = e.path().filename().string();
        if (!n.starts_with("localvm-sha256-"))
            names.push_back(n);
    }
    return names;
}

} // namespace

// What placement reads: NODE_GET_INFO and NODE_GET_FREE_MEMORY, decoded.
BOOST_AUTO_TEST_CASE(the_daemon_reports_this_hosts_cpus_and_memory) {
    lt::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto c = co_await localvm::libvirt::client::connect(home->remote());
            auto info = co_await c.node_info();
            auto free = co_await c.node_free_memory();
            co_await c.close();
            BOOST_TEST(info.model == "x86_64");
            BOOST_TEST(info.cpus == static_cast<int>(std::thread::hardware_concurrency()));
            // libvirt counts the NUMA nodes' memory, not always MemTotal
            // (here 20801308 KiB of 24683652).
            BOOST_TEST(info.memory_kib > 0u);
            BOOST_TEST(info.memory_kib <= meminfo_kib("MemTotal"));
            BOOST_TEST(free > 0u);
            BOOST_TEST(free <= info.memory_kib * 1024);
        },
        60s);
}

BOOST_AUTO_TEST_CASE(four_vms_spread_over_two_hosts) {
    const std::string pool = "localvm-test";
    {
        lt::vm_set set;
        set.set_hosts({{home->local(), pool}, {home->remote(), pool}});
        for (auto name : {"p1", "p2", "p3", "p4"})
            set.add(tiny(name));
        const auto t0 = std::chrono::steady_clock::now();
        set.run(
            [&](lt::vm_set& s) -> asio::awaitable<void> {
                std::cerr << "metric pool_four_tiny_boot_ms "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - t0)
                                 .count()
                          << "\n";
                // The body does not care where a VM runs...
                for (const auto& n : s.names())
                    co_await s[n].expect_output("echo hello from $(hostname)",
                                                "hello from " + n + "\n");
                // ...but each ran where the set says, two on each host.
                std::map<std::string, int> per_host;
                for (const auto& n : s.names()) {
                    const auto& host = s[n].host();
                    ++per_host[host];
                    auto c = co_await localvm::libvirt::client::connect(host);
                    auto dom = co_await c.lookup_domain(n);
                    BOOST_TEST(dom.id > 0, n << " runs on " << host);
                    co_await c.close();
                    BOOST_TEST_MESSAGE(n << " on " << host);
                }
                BOOST_TEST(per_host.size() == 2u);
                BOOST_TEST(per_host[home->local()] == 2);
                BOOST_TEST(per_host[home->remote()] == 2);
                // The QEMU backend's handle is not there for a libvirt VM.
                try {
                    s["p1"].manager();
                    BOOST_FAIL("no throw");
                } catch (const localvm::error& e) {
                    BOOST_TEST((e.code() == localvm::errc::unsupported));
                }
                // The console of a local VM holds its whole boot.
                for (const auto& n : s.names())
                    if (s[n].host() == home->local()) {
                        auto line = co_await s[n].wait_for_console("ssh ready", 10s);
                        BOOST_TEST(line.find("ssh ready") != std::string::npos);
                        break;
                    }
            },
            15min, "four tiny VMs on two libvirt hosts");
        auto problems = set.teardown();
        BOOST_TEST(problems.empty(), problems);
    }
    // Teardown stopped and removed each VM on its host.
    auto left = vm_volumes(home->daemon.pool_dir());
    std::string names;
    for (const auto& n : left)
        names += " " + n;
    BOOST_TEST(left.empty(), "volumes left:" << names);
    lt::run_coroutine(
        [&]() -> asio::awaitable<void> {
            for (const auto& uri : {home->local(), home->remote()}) {
                auto c = co_await localvm::libvirt::client::connect(uri);
                for (auto name : {"p1", "p2", "p3", "p4"})
                    co_await localvm::testing::expect_error(localvm::errc::libvirt_error,
                                                            [&] { return c.lookup_domain(name); });
                co_await c.close();
            }
        },
        60s);
}
