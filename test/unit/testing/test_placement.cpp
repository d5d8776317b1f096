// The kit's host pool placement: the most free capacity wins, memory is a
// hard limit, CPUs may be overcommitted, ties go to the first host.
#define BOOST_TEST_MODULE testing_placement
#include <localvm/error.hpp>
#include <localvm/testing/placement.hpp>

#include <boost/test/unit_test.hpp>

#include <vector>

using localvm::testing::host_capacity;
using localvm::testing::place;
using localvm::testing::vm_demand;

namespace {

constexpr std::uint64_t gib = 1024ull * 1024 * 1024;
constexpr std::uint64_t mib = 1024ull * 1024;

host_capacity host(const char* name, std::uint64_t total, std::uint64_t free, unsigned cpus) {
    host_capacity h;
    h.name = name;
    h.total_memory_bytes = total;
    h.free_memory_bytes = free;
    h.cpus = cpus;
    return h;
}

vm_demand vm(const char* name, std::uint64_t memory, unsigned cpus = 1) {
    vm_demand v;
    v.name = name;
    v.memory_bytes = memory;
    v.cpus = cpus;
    return v;
}

} // namespace

BOOST_AUTO_TEST_CASE(equal_hosts_take_turns) {
    std::vector<host_capacity> hosts = {host("a", 8 * gib, 6 * gib, 2),
                                        host("b", 8 * gib, 6 * gib, 2)};
    std::vector<vm_demand> vms = {vm("v1", 256 * mib), vm("v2", 256 * mib), vm("v3", 256 * mib),
                                  vm("v4", 256 * mib)};
    BOOST_TEST(place(hosts, vms) == (std::vector<std::size_t>{0, 1, 0, 1}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(the_host_with_more_free_capacity_takes_more) {
    // b has four times a's CPUs: after the first VM (a tie: the first
    // host), its CPU share stays the larger one.
    std::vector<host_capacity> hosts = {host("a", 16 * gib, 12 * gib, 2),
                                        host("b", 16 * gib, 12 * gib, 8)};
    std::vector<vm_demand> vms(5, vm("v", 512 * mib));
    BOOST_TEST(place(hosts, vms) == (std::vector<std::size_t>{0, 1, 1, 1, 1}),
               boost::test_tools::per_element());
    // Memory is the bottleneck share when it is scarcer than CPUs.
    hosts = {host("a", 16 * gib, 2 * gib, 16), host("b", 16 * gib, 8 * gib, 16)};
    BOOST_TEST(place(hosts, {vm("v", gib)}).front() == 1u);
}

BOOST_AUTO_TEST_CASE(memory_is_a_limit_cpus_are_not) {
    std::vector<host_capacity> hosts = {host("a", 4 * gib, 3 * gib, 1),
                                        host("b", 4 * gib, gib, 64)};
    // b has the CPUs but not the memory for a 2 GiB VM.
    BOOST_TEST(place(hosts, {vm("big", 2 * gib, 4)}).front() == 0u);
    // a takes 8 vCPUs on 1 CPU: overcommitted, still placed.
    auto where = place({host("a", 4 * gib, 3 * gib, 1)}, {vm("v", gib, 8), vm("w", gib, 8)});
    BOOST_TEST(where.size() == 2u);
    try {
        place(hosts, {vm("v1", 2 * gib), vm("v2", 2 * gib)});
        BOOST_FAIL("no throw");
    } catch (const localvm::error& e) {
        BOOST_TEST((e.code() == localvm::errc::busy));
        const std::string what = e.what();
        BOOST_TEST(what.find("'v2'") != std::string::npos, what);
        BOOST_TEST(what.find("a 1024 MiB") != std::string::npos, what);
        BOOST_TEST(what.find("b 1024 MiB") != std::string::npos, what);
    }
}

BOOST_AUTO_TEST_CASE(cpus_already_in_use_count) {
    auto a = host("a", 8 * gib, 6 * gib, 2);
    a.cpus_in_use = 2;
    std::vector<host_capacity> hosts = {a, host("b", 8 * gib, 6 * gib, 2)};
    BOOST_TEST(place(hosts, {vm("v1", gib), vm("v2", gib), vm("v3", gib)}) ==
                   (std::vector<std::size_t>{1, 1, 0}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(no_host_is_an_error_and_no_vm_is_nothing) {
    BOOST_TEST(place({host("a", gib, gib, 1)}, {}).empty());
    try {
        place({}, {vm("v", mib)});
        BOOST_FAIL("no throw");
    } catch (const localvm::error& e) {
        BOOST_TEST((e.code() == localvm::errc::invalid_argument));
    }
}
