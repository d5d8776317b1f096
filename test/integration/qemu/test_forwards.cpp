// Forwards added and removed at run time (issue 16 item 4) and list_vms
// (item 5), on a real QEMU without a guest OS: QEMU's forwarder accepts a
// connection on the host side by itself, which is what these check.
#define BOOST_TEST_MODULE qemu_forwards
#include "common.hpp"

#include <localvm/qemu/list.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace asio = boost::asio;
using localvm::errc;
using localvm::port_forward;
using lvtest::expect_error;
using lvtest::make_base;
using namespace std::chrono_literals;

using lvtest::leak_check;
BOOST_TEST_GLOBAL_FIXTURE(leak_check);

namespace {

port_forward fwd(std::string address, std::uint16_t host, std::uint16_t guest) {
    port_forward f;
    f.host_address = std::move(address);
    f.host_port = host;
    f.guest_port = guest;
    return f;
}

// Whether something listens on 127.0.0.1:port.
asio::awaitable<bool> listening(std::uint16_t port) {
    asio::ip::tcp::socket sock(co_await asio::this_coro::executor);
    boost::system::error_code ec;
    co_await sock.async_connect({asio::ip::make_address("127.0.0.1"), port},
                                asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
}

} // namespace

BOOST_AUTO_TEST_CASE(forwards_come_and_go_on_a_running_vm) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            co_await expect_error(errc::not_running,
                                  [&] { return m.add_forward(fwd("127.0.0.1", 0, 80)); });
            co_await m.start(lvtest::small_vm());

            auto made = co_await m.add_forward(fwd("127.0.0.1", 0, 8080));
            BOOST_TEST(made.host_port != 0);
            BOOST_TEST(made.guest_port == 8080);
            BOOST_TEST(co_await listening(made.host_port));
            // Another manager (as another process would) sees it.
            localvm::qemu::manager other(ex, h.options());
            auto ports = co_await other.ports();
            BOOST_REQUIRE(ports.size() == 2u);
            BOOST_TEST(ports[1].host_port == made.host_port);
            auto st = co_await other.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST(st.state->ports.size() == 2u);

            // A fixed port works too, and the same one twice is refused.
            asio::ip::tcp::acceptor probe(ex, {asio::ip::make_address("127.0.0.1"), 0});
            const auto free_port = probe.local_endpoint().port();
            probe.close();
            auto fixed = co_await m.add_forward(fwd("127.0.0.1", free_port, 80));
            BOOST_TEST(fixed.host_port == free_port);
            co_await expect_error(
                errc::already_exists, [&] { return m.add_forward(fwd("127.0.0.1", free_port, 81)); },
                "is forwarded already");

            // A port another program holds: busy, and nothing recorded.
            asio::ip::tcp::acceptor taken(ex, {asio::ip::make_address("127.0.0.1"), 0});
            const auto taken_port = taken.local_endpoint().port();
            co_await expect_error(
                errc::busy, [&] { return m.add_forward(fwd("127.0.0.1", taken_port, 8081)); },
                "in use");
            BOOST_TEST((co_await m.ports()).size() == 3u);

            // Bad input, refused before QEMU is asked.
            co_await expect_error(errc::invalid_argument,
                                  [&] { return m.add_forward(fwd("localhost", 0, 80)); });
            co_await expect_error(errc::invalid_argument,
                                  [&] { return m.add_forward(fwd("127.0.0.1", 0, 0)); });
            co_await expect_error(errc::invalid_argument,
                                  [&] { return m.remove_forward(fwd("127.0.0.1", 0, 80)); });

            // list_vms sees the VM with its forwards, without waiting.
            auto vms = co_await localvm::qemu::list_vms(h.options());
            BOOST_REQUIRE(vms.size() == 1u);
            BOOST_TEST(vms[0].name == "vm");
            BOOST_TEST(vms[0].st.running);
            BOOST_REQUIRE(vms[0].st.state);
            BOOST_TEST(vms[0].st.state->ports.size() == 3u);

            // Removal: the listener goes, the record too.
            co_await m.remove_forward(fwd("127.0.0.1", made.host_port, 0));
            BOOST_TEST(!co_await listening(made.host_port));
            BOOST_TEST((co_await m.ports()).size() == 2u);
            co_await expect_error(
                errc::not_found,
                [&] { return m.remove_forward(fwd("127.0.0.1", made.host_port, 8080)); },
                "has no forward from");
            co_await expect_error(
                errc::not_found, [&] { return m.remove_forward(fwd("127.0.0.1", free_port, 81)); },
                "to guest port 81");
            co_await m.remove_forward(fwd("127.0.0.1", free_port, 80));
            BOOST_TEST(!co_await listening(free_port));

            co_await m.stop();
            auto after = co_await localvm::qemu::list_vms(h.options());
            BOOST_REQUIRE(after.size() == 1u);
            BOOST_TEST(!after[0].st.running);
            BOOST_REQUIRE(after[0].st.state);
            BOOST_TEST((after[0].st.state->last_end == localvm::qemu::end_reason::stopped));
            co_await expect_error(errc::not_running,
                                  [&] { return m.remove_forward(fwd("127.0.0.1", 1, 22)); });
            co_await m.remove();
            BOOST_TEST((co_await localvm::qemu::list_vms(h.options())).empty());
        },
        180s);
}
