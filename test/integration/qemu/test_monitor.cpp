// The human monitor (HMP) of a real, idle QEMU, driven through a pty as a
// person at a terminal would: ask, read QEMU's answer, detach with Ctrl-].
#define BOOST_TEST_MODULE qemu_monitor
#include "common.hpp"

#include <localvm/testing/boost.hpp>
#include <localvm/console/serial.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <pty.h>
#include <termios.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

asio::awaitable<void> make_base(const lvtest::vm_home& h) {
    localvm::process::options o;
    o.argv = {"qemu-img", "create", "-q", "-f", "qcow2", h.base.string(), "64M"};
    co_await localvm::process::run_checked(o);
}

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

// Reads the pty master until `needle` shows up; false when `limit` passes first.
asio::awaitable<bool> read_until(asio::posix::stream_descriptor& master, std::string& seen,
                                 std::string needle, std::chrono::seconds limit) {
    asio::steady_timer timer(co_await asio::this_coro::executor, limit);
    while (seen.find(needle) == std::string::npos) {
        char buf[512];
        boost::system::error_code ec, tec;
        auto r = co_await (master.async_read_some(asio::buffer(buf),
                                                  asio::redirect_error(asio::use_awaitable, ec)) ||
                           timer.async_wait(asio::redirect_error(asio::use_awaitable, tec)));
        if (r.index() == 1 || ec)
            co_return false;
        seen.append(buf, std::get<0>(r));
    }
    co_return true;
}

asio::awaitable<void> type(asio::posix::stream_descriptor& master, std::string text) {
    co_await asio::async_write(master, asio::buffer(text), asio::use_awaitable);
}

bool same_termios(const termios& a, const termios& b) {
    return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
           a.c_lflag == b.c_lflag;
}

// A pty whose slave side plays the user's terminal.
struct pty {
    int master = -1;
    int slave = -1;
    pty() { BOOST_REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0); }
    ~pty() {
        if (slave >= 0)
            ::close(slave);
    }
    pty(const pty&) = delete;
    pty& operator=(const pty&) = delete;
};

} // namespace

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

            pty term;
            asio::posix::stream_descriptor master(ex, term.master);
            termios cooked{};
            BOOST_REQUIRE(::tcgetattr(term.slave, &cooked) == 0);
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
            termios after{};
            BOOST_REQUIRE(::tcgetattr(term.slave, &after) == 0);
            BOOST_TEST(same_termios(cooked, after), "the terminal's termios were not restored");

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
            co_await expect_error(errc::not_running, [&] { return m.attach_monitor(ao); });

            // A VM started without a monitor says so.
            co_await m.start(lvtest::small_vm());
            BOOST_TEST(!fs::exists(m.files().monitor_socket));
            auto what =
                co_await expect_error(errc::unsupported, [&] { return m.attach_monitor(ao); });
            BOOST_TEST(what.find("without a human monitor") != std::string::npos, what);
            co_await m.stop();
            co_await m.remove();
        },
        180s);
}
