// Virtual networks with the tiny guest: three VMs on one network reach each
// other by name, a fourth on another network reaches none of them, set_link
// cuts one off and restores it, and teardown leaves no switch, no QEMU and
// no files. Bad input is refused with nothing changed.
#define BOOST_TEST_MODULE e2e_networks
#include <localvm/qemu/network.hpp>
#include <localvm/testing/boost.hpp>

#include <boost/asio/this_coro.hpp>

#include <fstream>
#include <iterator>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lt = localvm::testing;
namespace lq = localvm::qemu;
using localvm::errc;
using namespace std::chrono_literals;

namespace {

lt::vm_spec tiny(const std::string& name, std::vector<localvm::network_attachment> nets) {
    lt::vm_spec s;
    s.name = name;
    s.start.cpus = 1;
    s.start.memory = "256M";
    s.start.boot = lt::guest_image::load("tiny").boot();
    s.start.networks = std::move(nets);
    return s;
}

localvm::network_attachment on(std::string network, std::string address) {
    localvm::network_attachment a;
    a.network = std::move(network);
    a.address = std::move(address);
    return a;
}

// Processes whose command line mentions `text`.
int processes_mentioning(const std::string& text) {
    int n = 0;
    for (const auto& d : fs::directory_iterator("/proc")) {
        std::ifstream in(d.path() / "cmdline");
        std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (cmd.find(text) != std::string::npos)
            ++n;
    }
    return n;
}

// One ping, as root in the guest (busybox ping needs a raw socket).
std::string ping(const std::string& host) { return "sudo ping -c 1 -W 2 " + host; }

template <class F> void expect_error(F&& f, errc code, const std::string& needle) {
    try {
        f();
        BOOST_FAIL("no error; expected " << needle);
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == code, e.what());
        BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, e.what());
    }
}

} // namespace

BOOST_AUTO_TEST_CASE(three_vms_reach_each_other_a_fourth_is_isolated_and_links_go_down_and_up) {
    fs::path root;
    {
        lt::vm_set set;
        root = set.root();
        set.add(tiny("a", {on("lan", "10.7.0.1/24")}));
        set.add(tiny("b", {on("lan", "10.7.0.2/24")}));
        set.add(tiny("c", {on("lan", "10.7.0.3/24")}));
        // Same subnet, another network: nothing of lan reaches it.
        set.add(tiny("d", {on("other", "10.7.0.4/24")}));
        set.run(
            [&](lt::vm_set& s) -> asio::awaitable<void> {
                // By name, each to each (the names come from /etc/hosts).
                for (const char* from : {"a", "b", "c"})
                    for (const char* to : {"a", "b", "c"})
                        if (std::string(from) != to)
                            co_await s[from].expect_status(ping(to));
                // The address is on the NIC with a's MAC on lan (matched by MAC).
                BOOST_TEST(co_await s["a"].output(
                               "for d in /sys/class/net/*; do [ \"$(cat $d/address)\" = " +
                               lq::default_mac("a", "lan") +
                               " ] && ip -4 -o addr show dev ${d##*/} | awk '{print $4}'; "
                               "done; true") == "10.7.0.1/24\n");
                // d is on another switch: no frame crosses.
                co_await s["d"].expect_status(ping("10.7.0.1"), 1);
                co_await s["a"].expect_status(ping("10.7.0.4"), 1);

                // Status shows the NIC; set_link cuts b off and restores it.
                auto st = co_await s["b"].manager().query();
                BOOST_REQUIRE(st.state && st.state->nics.size() == 1u);
                BOOST_TEST(st.state->nics[0].network == "lan");
                BOOST_TEST(st.state->nics[0].mac == lq::default_mac("b", "lan"));
                BOOST_TEST(st.state->nics[0].link_up);
                co_await s["b"].manager().set_link("lan", false);
                st = co_await s["b"].manager().query();
                BOOST_TEST(!st.state->nics[0].link_up);
                co_await s["a"].expect_status(ping("b"), 1);
                co_await s["c"].expect_status(ping("a"));
                co_await s["b"].manager().set_link("lan", true);
                co_await s["a"].expect_status(ping("b"));

                // Bad input, nothing changed: a network the VM is not on, an
                // unknown network, a duplicate address, removing a network in use.
                auto ex = co_await asio::this_coro::executor;
                try {
                    co_await s["a"].manager().set_link("other", false);
                    BOOST_FAIL("set_link on a network the VM is not on");
                } catch (const localvm::error& e) {
                    BOOST_TEST(e.code() == errc::not_found, e.what());
                }
                lq::network_options no;
                no.name = "lan";
                no.data_dir = s.root() / "data";
                no.runtime_dir = s.root() / "run";
                lq::virtual_network lan(ex, no);
                try {
                    co_await lan.remove();
                    BOOST_FAIL("removed a network in use");
                } catch (const localvm::error& e) {
                    BOOST_TEST(e.code() == errc::busy, e.what());
                    BOOST_TEST(std::string(e.what()).find("a, b, c") != std::string::npos,
                               e.what());
                }
                BOOST_TEST(co_await lan.exists());
                auto before = co_await lan.query();
                BOOST_TEST(before.switch_pid.has_value());

                auto e_opts = lt::vm_spec::test_options();
                e_opts.name = "e";
                e_opts.data_dir = s.root() / "data";
                e_opts.runtime_dir = s.root() / "run";
                lq::manager e(ex, e_opts);
                co_await e.create(s.root() / "blank-64M.qcow2");
                auto so = tiny("e", {on("lan", "10.7.0.2/24")}).start;
                try {
                    co_await e.start(so);
                    BOOST_FAIL("started with a duplicate address");
                } catch (const localvm::error& err) {
                    BOOST_TEST(err.code() == errc::already_exists, err.what());
                    BOOST_TEST(std::string(err.what()).find("VM b") != std::string::npos,
                               err.what());
                }
                so.networks = {on("nowhere", "10.8.0.1/24")};
                try {
                    co_await e.start(so);
                    BOOST_FAIL("started on an unknown network");
                } catch (const localvm::error& err) {
                    BOOST_TEST(err.code() == errc::not_found, err.what());
                    BOOST_TEST(std::string(err.what()).find("nowhere") != std::string::npos,
                               err.what());
                }
                BOOST_TEST(!co_await e.running());
                auto after = co_await lan.query();
                BOOST_TEST(after.members.size() == before.members.size());
                BOOST_TEST((after.switch_pid == before.switch_pid));
                co_await e.remove();
            },
            10min, "three VMs on a network");
        BOOST_TEST(processes_mentioning("vde_switch") >= 2);
        BOOST_TEST(set.teardown().empty());
    }
    BOOST_TEST(processes_mentioning(root.string()) == 0);
    BOOST_TEST(!fs::exists(root));
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused_before_anything_runs) {
    // Pure checks: addresses, MACs, names.
    std::string why;
    BOOST_TEST(!lq::parse_ipv4_prefix("10.0.2.5/24", why));
    BOOST_TEST(why.find("user-mode") != std::string::npos, why);
    BOOST_TEST(!lq::parse_ipv4_prefix("10.0.0.1/33", why));
    BOOST_TEST(!lq::parse_ipv4_prefix("server", why));
    BOOST_TEST(lq::parse_ipv4_prefix("10.0.0.1", why)->prefix == 24u);
    BOOST_TEST(!lq::normalize_mac("01:00:00:00:00:01").has_value()); // multicast
    BOOST_TEST(*lq::normalize_mac("0E:AA:00:00:00:01") == "0e:aa:00:00:00:01");
    BOOST_TEST(lq::default_mac("a", "lan") == lq::default_mac("a", "lan"));
    BOOST_TEST(lq::default_mac("a", "lan") != lq::default_mac("b", "lan"));
    BOOST_TEST(!lq::check_network_name("a/b").empty());

    lt::vm_set set;
    set.add(tiny("a", {on("lan", "10.7.0.1/24")}));
    expect_error([&] { set.add(tiny("b", {on("lan", "10.7.0.1/16")})); }, errc::invalid_argument,
                 "10.7.0.1 on network lan");
    expect_error([&] { set.add(tiny("b", {on("lan", "10.0.2.9/24")})); }, errc::invalid_argument,
                 "user-mode");
    // A VM naming one network twice fails its start, before QEMU runs.
    auto twice = tiny("b", {on("lan", "10.7.0.2/24"), on("lan", "10.7.0.3/24")});
    twice.ready_timeout = 0ms;
    set.add(twice);
    expect_error(
        [&] { set.run([](lt::vm_set&) -> asio::awaitable<void> { co_return; }, 2min); },
        errc::invalid_argument, "given twice");
    BOOST_TEST(set.teardown().empty());
}
