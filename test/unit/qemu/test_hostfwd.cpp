// Forwards at run time (issue 16 item 4): the HMP commands and QEMU's
// answers, byte for byte as QEMU 7.2 writes them.
#define BOOST_TEST_MODULE qemu_hostfwd
#include <boost/test/unit_test.hpp>

#include "hostfwd.hpp"

using namespace localvm::qemu::detail;
using localvm::port_forward;

namespace {

const char* usernet =
    "Hub -1 (#net088):\r\n"
    "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n"
    "  TCP[HOST_FORWARD]  15       127.0.0.1 45678       10.0.2.15  8080     0     0\r\n"
    "  TCP[HOST_FORWARD]  13       127.0.0.1 45717       10.0.2.15  8080     0     0\r\n"
    "  UDP[HOST_FORWARD]  16       127.0.0.1  5353       10.0.2.15    53     0     0\r\n"
    "  TCP[ESTABLISHED]   17       10.0.2.15 51000        10.0.2.2    22     0     0\r\n"
    "  TCP[HOST_FORWARD]   8       127.0.0.1 36043       10.0.2.15    22     0     0\r\n";

port_forward fwd(const char* a, unsigned h, unsigned g) {
    port_forward f;
    f.host_address = a;
    f.host_port = static_cast<std::uint16_t>(h);
    f.guest_port = static_cast<std::uint16_t>(g);
    return f;
}

bool same(const port_forward& a, const port_forward& b) {
    return a.host_address == b.host_address && a.host_port == b.host_port &&
           a.guest_port == b.guest_port;
}

} // namespace

BOOST_AUTO_TEST_CASE(usernet_lists_tcp_host_forwards) {
    auto f = parse_usernet_forwards(usernet);
    BOOST_REQUIRE(f.size() == 3u);
    BOOST_TEST(same(f[0], fwd("127.0.0.1", 45678, 8080)));
    BOOST_TEST(same(f[1], fwd("127.0.0.1", 45717, 8080)));
    BOOST_TEST(same(f[2], fwd("127.0.0.1", 36043, 22)));
    BOOST_TEST(parse_usernet_forwards("").empty());
    BOOST_TEST(parse_usernet_forwards("TCP[HOST_FORWARD] 1 127.0.0.1 99999 x 1\n").empty());
    BOOST_TEST(parse_usernet_forwards("TCP[HOST_FORWARD] 1 127.0.0.1 5 x\n").empty());
}

BOOST_AUTO_TEST_CASE(commands) {
    BOOST_TEST(hostfwd_add_command(fwd("127.0.0.1", 0, 8080)) == "hostfwd_add tcp:127.0.0.1:0-:8080");
    BOOST_TEST(hostfwd_add_command(fwd("0.0.0.0", 2222, 22)) == "hostfwd_add tcp:0.0.0.0:2222-:22");
    BOOST_TEST(hostfwd_remove_command(fwd("127.0.0.1", 2222, 22)) ==
               "hostfwd_remove tcp:127.0.0.1:2222");
}

BOOST_AUTO_TEST_CASE(answers) {
    BOOST_TEST(hostfwd_add_failure("").empty());
    BOOST_TEST(hostfwd_add_failure("Could not set up host forwarding rule "
                                   "'tcp:127.0.0.1:34339-:8080'\r\n") ==
               "Could not set up host forwarding rule 'tcp:127.0.0.1:34339-:8080'");
    BOOST_TEST(hostfwd_add_failure("a\r\nb\r\n") == "a  b");
    BOOST_TEST(hostfwd_removed("host forwarding rule for tcp:127.0.0.1:45678 removed\r\n"));
    BOOST_TEST(!hostfwd_removed("host forwarding rule for tcp:127.0.0.1:45678 not found\r\n"));
    BOOST_TEST(!hostfwd_removed(""));
}

BOOST_AUTO_TEST_CASE(the_new_forward_is_found_by_difference) {
    auto before = parse_usernet_forwards(usernet);
    auto after = before;
    after.insert(after.begin(), fwd("127.0.0.1", 41000, 8080)); // QEMU lists the newest first
    auto fresh = new_forwards(before, after);
    BOOST_REQUIRE(fresh.size() == 1u);
    BOOST_TEST(same(fresh[0], fwd("127.0.0.1", 41000, 8080)));
    auto made = made_for(fresh, fwd("127.0.0.1", 0, 8080));
    BOOST_REQUIRE(made);
    BOOST_TEST(made->host_port == 41000);
    BOOST_TEST(!made_for(fresh, fwd("127.0.0.1", 0, 80)));
    BOOST_TEST(!made_for(fresh, fwd("127.0.0.1", 41001, 8080)));
    BOOST_TEST(!made_for(fresh, fwd("0.0.0.0", 0, 8080)));
    BOOST_TEST(made_for(fresh, fwd("127.0.0.1", 41000, 8080)).has_value());
    // A multiset: a duplicate line in `after` is one new forward.
    after.push_back(before[2]);
    BOOST_TEST(new_forwards(before, after).size() == 2u);
    BOOST_TEST(new_forwards(after, before).empty());
    BOOST_TEST(same_listener(fwd("127.0.0.1", 1, 2), fwd("127.0.0.1", 1, 3)));
    BOOST_TEST(!same_listener(fwd("127.0.0.1", 1, 2), fwd("127.0.0.2", 1, 2)));
}
