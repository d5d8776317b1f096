// An interactive shell in the tiny guest, typed into through a pty the way a
// person at a terminal would: `shell` with no command.
#define BOOST_TEST_MODULE e2e_interactive
#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/testing/leaks.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include "../../common/pty.hpp"
#include "guest.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

asio::awaitable<fs::path> blank_base(const lve2e::home& h) {
    auto base = h.root / "base.qcow2";
    localvm::process::options o;
    o.argv = {"qemu-img", "create", "-q", "-f", "qcow2", base.string(), "64M"};
    co_await localvm::process::run_checked(o);
    co_return base;
}

} // namespace

using lvtest::read_until;
using lvtest::type;

BOOST_AUTO_TEST_CASE(interactive_shell_on_a_terminal) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    auto before = localvm::testing::resource_snapshot::take();
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto base = co_await blank_base(h);
            localvm::qemu::manager m(ex, h.options("interactive"));
            co_await m.create(base);
            co_await m.start(lve2e::tiny_start(g, h));
            co_await m.wait_ready(180s);

            // The pty's slave side is the user's terminal.
            lvtest::pty term;
            asio::posix::stream_descriptor master(ex, term.take_master());
            const auto cooked = term.modes();

            localvm::shell_options so;
            so.input_fd = term.slave;
            so.output_fd = term.slave;
            so.error_fd = term.slave;
            // The remote shell evaluates what is typed (the terminal's echo
            // shows `hi-$((6*7))`, only the shell prints `hi-42`), then
            // `exit 3` ends the session with that status.
            std::string seen;
            auto user = [&]() -> asio::awaitable<bool> {
                co_await type(master, "echo hi-$((6*7))\r");
                bool ok = co_await read_until(master, seen, "hi-42", 120s);
                co_await type(master, "exit 3\r");
                co_return ok;
            };
            auto [r, ok] = co_await (m.shell("", so) && user());
            BOOST_TEST(ok, "the terminal showed: " << seen);
            BOOST_TEST(r.exit_status == 3, "the terminal showed: " << seen);
            BOOST_TEST(r.output.empty());
            BOOST_TEST(lvtest::same_modes(cooked, term.modes()),
                       "ssh did not restore the terminal");
            term.close_slave();

            co_await m.stop();
            co_await m.remove();
        },
        600s);
    localvm::testing::leak_check_options o;
    o.directories = {h.root};
    auto left = localvm::testing::find_leaks(before, o);
    BOOST_TEST(left.clean(), "left behind:\n" << left.describe());
}
