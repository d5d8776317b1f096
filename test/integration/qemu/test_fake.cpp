// The QEMU stand-in (test/fake/fake_qemu.cpp, default mode "run") as
// localvm sees it: start, forwards bound and reported by `info usernet`,
// query, an extra QMP monitor held open beside the library's, stop by the
// ACPI power button, and nothing left behind. It must stay faithful enough
// for bench/scale to count with it; the real QEMU stays the truth.
#define BOOST_TEST_MODULE qemu_fake
#include <localvm/qmp/client.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>

#include "common.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using lvtest::leak_check;
BOOST_TEST_GLOBAL_FIXTURE(leak_check);

namespace {

std::string fake_qemu() {
    const char* p = std::getenv("LOCALVM_FAKE_QEMU");
    BOOST_REQUIRE(p);
    return p;
}

} // namespace

BOOST_AUTO_TEST_CASE(stand_in_starts_answers_and_stops_like_qemu) {
    lvtest::vm_home h;
    ::unsetenv("FAKE_QEMU_MODE"); // the default: run
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.qemu_binary = fake_qemu();
            o.extra_qmp = 1;
            localvm::qemu::manager m(ex, o);
            co_await m.create(h.base);
            auto s = lvtest::small_vm();
            s.ports = {{"127.0.0.1", 0, 22}, {"127.0.0.1", 0, 80}};
            co_await m.start(s);
            BOOST_TEST(co_await m.running());
            auto ports = co_await m.ports();
            BOOST_TEST_REQUIRE(ports.size() == 2u);
            BOOST_TEST(ports[0].host_port != 0);
            BOOST_TEST(ports[1].host_port != 0);
            BOOST_TEST(ports[0].host_port != ports[1].host_port);
            // The forward is bound: a connect succeeds (nothing answers on it).
            asio::ip::tcp::socket sock(ex);
            co_await sock.async_connect({asio::ip::make_address("127.0.0.1"), ports[0].host_port},
                                        asio::use_awaitable);
            sock.close();

            auto q = co_await m.query();
            BOOST_TEST(q.running);
            BOOST_TEST_REQUIRE(q.pid.has_value());
            // The caller's own monitor, held open while the library uses its own.
            auto extra =
                co_await localvm::qmp::client::connect(m.files().extra_qmp_sockets.at(0).string());
            auto st = co_await extra.query_status();
            BOOST_TEST(st.running);
            BOOST_TEST(st.status == "running");
            BOOST_TEST(co_await m.running());
            try {
                co_await extra.execute("no-such-command");
                BOOST_FAIL("no error");
            } catch (const localvm::qmp::command_error& e) {
                BOOST_TEST(e.error_class() == "CommandNotFound");
            }
            auto shutdown = extra.subscribe("SHUTDOWN");

            co_await m.stop();
            auto ev = co_await shutdown.next(5s);
            BOOST_TEST(ev.name == "SHUTDOWN");
            BOOST_TEST(!co_await m.running());
            auto after = co_await m.query();
            BOOST_TEST_REQUIRE(after.state.has_value());
            BOOST_TEST(localvm::qemu::to_string(after.state->stopped_by) == "powerdown");
            BOOST_TEST(!fs::exists(m.files().pidfile));
            BOOST_TEST(!fs::exists(m.files().qmp_socket));
            BOOST_TEST(!fs::exists(m.files().extra_qmp_sockets.at(0)));
            extra.close();
            co_await m.remove();
        },
        60s);
}
