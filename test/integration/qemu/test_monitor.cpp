// The human monitor (HMP) of a real, idle QEMU, driven through a pty as a
// person at a terminal would: ask, read QEMU's answer, detach with Ctrl-].
#define BOOST_TEST_MODULE qemu_monitor
#include <localvm/console/serial.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include "../../common/pty.hpp"
#include "common.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

using lvtest::make_base;

using localvm::testing::expect_error;

// QEMU's version number, e.g. "7.2.15", from `--version`, to compare with
// HMP's `info version` (whose answer line starts with it).
asio::awaitable<std::string> qemu_version() {
    localvm::process::options o;
    o.argv = {"qemu-system-x86_64", "--version"};
    auto r = co_await localvm::process::run_checked(o);
    auto first = r.out.substr(0, r.out.find('\n'));
    auto at = first.find("version ");
    BOOST_REQUIRE(at != std::string::npos);
    auto number = first.substr(at + 8);
    co_return number.substr(0, number.find(' '));
}

} // namespace

using lvtest::read_until;
using lvtest::type;

using lvtest::leak_check;
BOOST_TEST_GLOBAL_FIXTURE(leak_check);

BOOST_AUTO_TEST_CASE(hmp_monitor_on_a_terminal) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto version = co_await qemu_version();
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            co_await expect_error(errc::not_running, [&] { return m.attach_monitor({}); });

            auto s = lvtest::small_vm();
            s.monitor = true;
            co_await m.start(s);
            BOOST_TEST(fs::exists(m.files().monitor_socket));
            auto with = co_await m.query();
            BOOST_TEST(with.monitor);

            lvtest::pty term;
            asio::posix::stream_descriptor master(ex, term.take_master());
            const auto cooked = term.modes();
            localvm::console::attach_options ao;
            ao.input_fd = term.slave;
            ao.output_fd = term.slave;
            ao.hint = localvm::console::attach_hint("vm", "QEMU monitor");

            // Ask QEMU what it is doing and which version it is; its answers
            // come back on the terminal. Ctrl-] detaches.
            std::string seen;
            auto user = [&]() -> asio::awaitable<bool> {
                bool ok = co_await read_until(master, seen, "(qemu) ", 60s);
                if (ok) {
                    co_await type(master, "info status\r");
                    ok = co_await read_until(master, seen, "VM status: running", 60s);
                }
                if (ok) {
                    co_await type(master, "info version\r");
                    ok = co_await read_until(master, seen, "\n" + version, 60s);
                }
                co_await type(master, "\x1d");
                co_return ok;
            };
            auto [how, ok] = co_await (m.attach_monitor(ao) && user());
            BOOST_TEST(ok, "the terminal showed: " << seen);
            BOOST_TEST((how == localvm::console::attach_end::detached));
            BOOST_TEST(seen.find("Connected to the QEMU monitor of vm; Ctrl-] detaches.") !=
                       std::string::npos);
            BOOST_TEST(seen.find("QEMU ") != std::string::npos); // the monitor's banner
            BOOST_TEST(lvtest::same_modes(cooked, term.modes()),
                       "the terminal's termios were not restored");

            // QEMU keeps running, and serves the next attach.
            bool running = co_await m.running();
            BOOST_TEST(running);
            seen.clear();
            auto again = [&]() -> asio::awaitable<bool> {
                co_await type(master, "info name\r");
                bool named = co_await read_until(master, seen, "\nvm", 60s);
                co_await type(master, "\x1d");
                co_return named;
            };
            auto [how2, named] = co_await (m.attach_monitor(ao) && again());
            BOOST_TEST(named, "the terminal showed: " << seen);
            BOOST_TEST((how2 == localvm::console::attach_end::detached));
            running = co_await m.running();
            BOOST_TEST(running);

            co_await m.stop();
            running = co_await m.running();
            BOOST_TEST(!running);
            BOOST_TEST(!fs::exists(m.files().monitor_socket));
            auto stopped = co_await m.query();
            BOOST_TEST(!stopped.monitor);
            co_await expect_error(errc::not_running, [&] { return m.attach_monitor(ao); });

            // A VM started without a monitor says so.
            co_await m.start(lvtest::small_vm());
            BOOST_TEST(!fs::exists(m.files().monitor_socket));
            auto without = co_await m.query();
            BOOST_TEST(!without.monitor);
            auto what =
                co_await expect_error(errc::unsupported, [&] { return m.attach_monitor(ao); });
            BOOST_TEST(what.find("without a human monitor") != std::string::npos, what);
            co_await m.stop();
            co_await m.remove();
        },
        180s);
}

BOOST_AUTO_TEST_CASE(extra_qmp_monitors_for_the_caller) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.extra_qmp = 2;
            localvm::qemu::manager m(ex, o);
            co_await m.create(h.base);
            co_await m.start(lvtest::small_vm());
            const auto& extra = m.files().extra_qmp_sockets;
            BOOST_REQUIRE(extra.size() == 2u);
            std::vector<std::string> paths;
            for (const auto& p : extra) {
                BOOST_TEST(fs::exists(p), p);
                paths.push_back(p.string());
            }

            // The caller's own client over both, held while the library
            // goes on using its socket: query and stop are not held up.
            auto c = co_await localvm::qmp::client::connect_lanes(paths, {.enable_oob = true});
            BOOST_TEST(c.lanes() == 2u);
            auto st = co_await c.query_status();
            BOOST_TEST(st.running, st.status);
            auto shutdown = c.subscribe("SHUTDOWN");
            auto q = co_await m.query();
            BOOST_TEST(q.running);
            co_await m.stop();
            // The caller sees QEMU go: its SHUTDOWN, then the end of the connection.
            auto e = co_await shutdown.next(30s);
            BOOST_TEST(e.name == "SHUTDOWN");
            auto end = co_await c.wait_closed(30s);
            BOOST_TEST((end == localvm::qmp::connection_end::clean));
            for (const auto& p : extra)
                BOOST_TEST(!fs::exists(p), p);

            // Without extra monitors there are none.
            localvm::qemu::manager plain(ex, h.options());
            BOOST_TEST(plain.files().extra_qmp_sockets.empty());
            co_await m.remove();
        },
        180s);
}
