// The test kit's host pool: two libvirt "hosts" (two private libvirtds on
// this machine, each its own daemon, pool and QEMUs), four tiny guests
// placed across both by what the daemons report, booted at once; a test
// body that does not care where each runs; teardown on every host. Also
// what the daemons report for placement (node info, free memory) against
// /proc. Exit 77 when libvirtd, QEMU, unshare or setpriv is absent (or not
// root).
#define BOOST_TEST_MODULE e2e_libvirt_pool
#include <localvm/libvirt/client.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "private_libvirtd.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lt = localvm::testing;
using namespace std::chrono_literals;

namespace {

// Two private daemons for the whole run, on an io_context that outlives them.
struct daemons_home {
    asio::io_context ctx;
    libvirt_test::private_libvirtd a, b;
};
daemons_home* daemons = nullptr;

struct global_setup {
    global_setup() {
        if (auto missing = libvirt_test::missing_tools(); !missing.empty()) {
            std::cerr << "skipping: " << missing << "\n";
            std::_Exit(77);
        }
        static daemons_home home;
        daemons = &home;
        std::exception_ptr failed;
        int done = 0;
        for (auto* d : {&home.a, &home.b})
            asio::co_spawn(home.ctx, d->start(300s), [&](std::exception_ptr e) {
                if (e)
                    failed = e;
                ++done;
            });
        while (done < 2)
            home.ctx.run_one();
        if (failed)
            std::rethrow_exception(failed);
    }
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

std::size_t files_in(const fs::path& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir))
        ++n;
    return n;
}

} // namespace

// What placement reads: NODE_GET_INFO and NODE_GET_FREE_MEMORY, decoded.
BOOST_AUTO_TEST_CASE(the_daemon_reports_this_hosts_cpus_and_memory) {
    lt::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto c = co_await localvm::libvirt::client::connect(daemons->a.uri());
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
        set.set_hosts({{daemons->a.uri(), pool}, {daemons->b.uri(), pool}});
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
                BOOST_TEST(per_host[daemons->a.uri()] == 2);
                BOOST_TEST(per_host[daemons->b.uri()] == 2);
                // The QEMU backend's handle is not there for a libvirt VM.
                try {
                    s["p1"].manager();
                    BOOST_FAIL("no throw");
                } catch (const localvm::error& e) {
                    BOOST_TEST((e.code() == localvm::errc::unsupported));
                }
                auto line = co_await s["p2"].wait_for_console("ssh ready", 10s);
                BOOST_TEST(line.find("ssh ready") != std::string::npos);
            },
            15min, "four tiny VMs on two libvirt hosts");
        auto problems = set.teardown();
        BOOST_TEST(problems.empty(), problems);
    }
    // Teardown stopped and removed each VM on its host.
    BOOST_TEST(files_in(daemons->a.pool_dir()) == 0u);
    BOOST_TEST(files_in(daemons->b.pool_dir()) == 0u);
    lt::run_coroutine(
        [&]() -> asio::awaitable<void> {
            for (auto* d : {&daemons->a, &daemons->b}) {
                auto c = co_await localvm::libvirt::client::connect(d->uri());
                for (auto name : {"p1", "p2", "p3", "p4"})
                    co_await localvm::testing::expect_error(localvm::errc::libvirt_error,
                                                            [&] { return c.lookup_domain(name); });
                co_await c.close();
            }
        },
        60s);
}
