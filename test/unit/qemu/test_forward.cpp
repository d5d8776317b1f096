// Port forwards as text, and the stage words of the boot timeline.
#define BOOST_TEST_MODULE qemu_forward
#include <localvm/error.hpp>
#include <localvm/qemu/forward.hpp>
#include <localvm/qemu/stage.hpp>

#include <boost/test/unit_test.hpp>

using namespace localvm::qemu;

BOOST_AUTO_TEST_CASE(parses_the_three_forms) {
    boost::system::error_code ec;
    auto a = parse_port_forward("22", ec);
    BOOST_REQUIRE(a);
    BOOST_TEST(a->host_address == "127.0.0.1");
    BOOST_TEST(a->host_port == 0);
    BOOST_TEST(a->guest_port == 22);
    auto b = parse_port_forward("2222:22", ec);
    BOOST_REQUIRE(b);
    BOOST_TEST(b->host_port == 2222);
    BOOST_TEST(b->guest_port == 22);
    auto c = parse_port_forward("0.0.0.0:65535:8080", ec);
    BOOST_REQUIRE(c);
    BOOST_TEST(c->host_address == "0.0.0.0");
    BOOST_TEST(c->host_port == 65535);
    BOOST_TEST(c->guest_port == 8080);
    BOOST_TEST(!ec);
    BOOST_TEST(format_port_forward(*c) == "0.0.0.0:65535:8080");
    auto round = parse_port_forward(format_port_forward(*b), ec);
    BOOST_REQUIRE(round);
    BOOST_TEST(round->host_port == 2222);
}

BOOST_AUTO_TEST_CASE(rejects_the_rest) {
    for (auto text :
         {"", ":", "0", "65536", "1:0", "-1:22", "+1:22", "a:22", "22:", ":22", "localhost:1:22",
          "1.2.3:1:22", "1.2.3.4:1:2:3", " 22", "2222 :22", "::1:22", "100000:22"}) {
        BOOST_TEST_CONTEXT(text) {
            boost::system::error_code ec;
            BOOST_TEST(!parse_port_forward(text, ec));
            BOOST_TEST(ec == localvm::errc::invalid_argument);
        }
    }
}

BOOST_AUTO_TEST_CASE(stage_words) {
    BOOST_TEST(to_string(boot_stage::qemu_spawned) == "qemu-spawned");
    BOOST_TEST(to_string(boot_stage::qmp_ready) == "qmp-ready");
    BOOST_TEST(to_string(boot_stage::guest_running) == "guest-running");
    BOOST_TEST(to_string(boot_stage::ssh_banner) == "ssh-banner");
    BOOST_TEST(to_string(boot_stage::ssh_login) == "ssh-login");
}
