// The pure parts of virtual networks: names, MACs, addresses, the layout,
// and the checks of start_options::networks.
#define BOOST_TEST_MODULE qemu_network
#include <localvm/error.hpp>
#include <localvm/qemu/network.hpp>

#include "vm_networks.hpp"

#include <boost/test/unit_test.hpp>

using namespace localvm::qemu;
using localvm::errc;

BOOST_AUTO_TEST_CASE(default_macs_are_stable_local_and_unicast) {
    // Pinned: a changed derivation would change every guest's MAC.
    BOOST_TEST(default_mac("a", "lan") == default_mac("a", "lan"));
    BOOST_TEST(default_mac("a", "lan") != default_mac("b", "lan"));
    BOOST_TEST(default_mac("a", "lan") != default_mac("a", "lan2"));
    BOOST_TEST(default_mac("ab", "c") != default_mac("a", "bc"));
    for (const char* vm : {"a", "b", "server", "client-1", "x.y"}) {
        auto mac = default_mac(vm, "lan");
        BOOST_TEST(normalize_mac(mac).value_or("") == mac);
        unsigned first = static_cast<unsigned>(std::stoul(mac.substr(0, 2), nullptr, 16));
        BOOST_TEST((first & 3u) == 2u, mac); // locally administered, unicast
        BOOST_TEST(!mac.starts_with("52:54:00"), mac);
    }
}

BOOST_AUTO_TEST_CASE(macs_are_checked_and_lower_cased) {
    BOOST_TEST(*normalize_mac("0E:AA:bb:00:00:01") == "0e:aa:bb:00:00:01");
    for (const char* bad : {"", "0e:aa:bb:00:00", "0e:aa:bb:00:00:01:02", "0e-aa-bb-00-00-01",
                            "0g:aa:bb:00:00:01", "01:00:5e:00:00:01", "00:00:00:00:00:00",
                            "0e:aa:bb:00:00:0 "})
        BOOST_TEST(!normalize_mac(bad).has_value(), bad);
}

BOOST_AUTO_TEST_CASE(addresses) {
    std::string why;
    auto a = parse_ipv4_prefix("10.0.0.1/16", why);
    BOOST_REQUIRE(a);
    BOOST_TEST(a->address == "10.0.0.1");
    BOOST_TEST(a->prefix == 16u);
    BOOST_TEST(parse_ipv4_prefix("192.168.5.9", why)->prefix == 24u);
    for (const char* bad : {"", "10.0.0.1/", "10.0.0.1/0", "10.0.0.1/33", "10.0.0.1/2x",
                            "10.0.0", "server", "10.0.2.15/24", "127.0.0.1/8", "0.0.0.0/8",
                            "224.0.0.1/4", "255.255.255.255/32", " 10.0.0.1/24"}) {
        BOOST_TEST(!parse_ipv4_prefix(bad, why).has_value(), bad);
        BOOST_TEST(!why.empty());
    }
    parse_ipv4_prefix("10.0.2.15/24", why);
    BOOST_TEST(why.find("user-mode") != std::string::npos, why);
}

BOOST_AUTO_TEST_CASE(names_and_layout) {
    BOOST_TEST(check_network_name("lan-1.a_b").empty());
    for (const char* bad : {"", ".", "..", "a/b", "a b", "@x"})
        BOOST_TEST(!check_network_name(bad).empty(), bad);
    BOOST_TEST(!check_network_name(std::string(65, 'a')).empty());
    network_options o;
    o.name = "lan";
    o.data_dir = "/d";
    o.runtime_dir = "/r";
    auto l = make_network_layout(o);
    BOOST_TEST(l.data == "/d/@networks/lan");
    BOOST_TEST(l.runtime == "/r/@networks/lan");
    BOOST_TEST(l.definition == "/d/@networks/lan/network.json");
    BOOST_TEST(l.switch_dir == "/r/@networks/lan/switch");
    BOOST_TEST(l.pidfile == "/r/@networks/lan/switch.pid");
    o.runtime_dir = "/" + std::string(90, 'r');
    BOOST_CHECK_THROW(make_network_layout(o), localvm::error);
    o.name = "a/b";
    BOOST_CHECK_THROW(make_network_layout(o), localvm::error);
}

BOOST_AUTO_TEST_CASE(start_options_networks_are_checked) {
    std::vector<localvm::network_attachment> n(2);
    n[0].network = "lan";
    n[0].address = "10.0.0.1";
    n[1].network = "dmz";
    n[1].mac = "0A:00:00:00:00:01";
    auto c = detail::check_networks(n, "vm1");
    BOOST_REQUIRE(c.size() == 2u);
    BOOST_TEST(c[0].address == "10.0.0.1/24");
    BOOST_TEST(c[0].mac == default_mac("vm1", "lan"));
    BOOST_TEST(c[1].mac == "0a:00:00:00:00:01");
    auto refused = [](std::vector<localvm::network_attachment> bad, const std::string& needle) {
        try {
            detail::check_networks(bad, "vm1");
            BOOST_ERROR("accepted: " << needle);
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
            BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, e.what());
        }
    };
    auto twice = n;
    twice[1].network = "lan";
    refused(twice, "given twice");
    auto same_mac = n;
    same_mac[0].mac = same_mac[1].mac;
    refused(same_mac, "given twice");
    auto user_mac = n;
    user_mac[0].mac = "52:54:00:12:34:56";
    refused(user_mac, "user-mode NIC");
    auto bad_mac = n;
    bad_mac[0].mac = "01:00:00:00:00:01";
    refused(bad_mac, "not a unicast address");
    auto bad_name = n;
    bad_name[0].network = "a b";
    refused(bad_name, "network name");
    auto bad_address = n;
    bad_address[0].address = "10.0.2.3/24";
    refused(bad_address, "user-mode network");
}
