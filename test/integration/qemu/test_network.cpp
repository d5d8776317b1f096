// Virtual networks against the real vde_switch (no QEMU): create, join
// (which starts the switch, detached and found again through its pid file
// lock), the address rules, query, and remove (which stops the switch and
// leaves no process and no file).
#define BOOST_TEST_MODULE qemu_network_switch
#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qemu/network.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lq = localvm::qemu;
using localvm::errc;
using namespace std::chrono_literals;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string templ = (fs::temp_directory_path() / "localvm-net-XXXXXX").string();
        path = ::mkdtemp(templ.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::string comm(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string c;
    std::getline(in, c);
    return c;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_network_lives_from_create_to_remove_and_its_switch_with_it) {
    temp_dir dir;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            lq::network_options o;
            o.name = "lan";
            o.data_dir = dir.path / "data";
            o.runtime_dir = dir.path / "run";
            lq::virtual_network net(ex, o);
            BOOST_TEST(!co_await net.exists());
            BOOST_TEST(lq::list_networks(o.data_dir).empty());
            try {
                co_await net.join("a", dir.path / "data/a", dir.path / "run/a/qemu.pid",
                                  lq::default_mac("a", "lan"), "10.0.0.1/24");
                BOOST_FAIL("joined a network that does not exist");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::not_found, e.what());
            }
            co_await net.create();
            BOOST_TEST(co_await net.exists());
            try {
                co_await net.create();
                BOOST_FAIL("created twice");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::already_exists, e.what());
            }
            BOOST_TEST(lq::list_networks(o.data_dir) == std::vector<std::string>{"lan"});
            BOOST_TEST(!(co_await net.query()).switch_pid);

            // VM a exists (its data directory) and claims 10.0.0.1.
            fs::create_directories(dir.path / "data/a");
            co_await net.reserve("b", dir.path / "data/b", "10.0.0.2/24");
            auto j = co_await net.join("a", dir.path / "data/a", dir.path / "run/a/qemu.pid",
                                       lq::default_mac("a", "lan"), "10.0.0.1/24");
            BOOST_TEST(j.switch_dir == net.files().switch_dir);
            BOOST_TEST(fs::exists(j.switch_dir / "ctl"));
            BOOST_REQUIRE(j.peers.size() == 1u);
            BOOST_TEST(j.peers[0].first == "b");
            BOOST_TEST(j.peers[0].second == "10.0.0.2");
            auto st = co_await net.query();
            BOOST_REQUIRE(st.switch_pid);
            const pid_t sw = *st.switch_pid;
            BOOST_TEST(comm(sw) == "vde_switch");
            BOOST_TEST(st.members.size() == 2u);

            // A second join finds the same switch; another VM may not take a's address.
            fs::create_directories(dir.path / "data/c");
            try {
                co_await net.join("c", dir.path / "data/c", dir.path / "run/c/qemu.pid",
                                  lq::default_mac("c", "lan"), "10.0.0.1/24");
                BOOST_FAIL("took another VM's address");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::already_exists, e.what());
                BOOST_TEST(std::string(e.what()).find("VM a") != std::string::npos, e.what());
            }
            BOOST_TEST((co_await net.query()).members.size() == 2u);
            j = co_await net.join("c", dir.path / "data/c", dir.path / "run/c/qemu.pid",
                                  lq::default_mac("c", "lan"), "10.0.0.3/24");
            BOOST_TEST(j.peers.size() == 2u);
            BOOST_TEST(((co_await net.query()).switch_pid == sw));
            // Once a is gone, its address is free.
            fs::remove_all(dir.path / "data/a");
            co_await net.reserve("d", dir.path / "data/d", "10.0.0.1/24");

            // A switch that died is started again by the next join.
            ::kill(sw, SIGKILL);
            BOOST_TEST(co_await localvm::process::wait_exit(sw, 10s));
            j = co_await net.join("c", dir.path / "data/c", dir.path / "run/c/qemu.pid",
                                  lq::default_mac("c", "lan"), "10.0.0.3/24");
            auto again = (co_await net.query()).switch_pid;
            BOOST_REQUIRE(again);
            BOOST_TEST(*again != sw);

            // No member runs (no QEMU holds their pid files): remove stops the switch.
            co_await net.remove();
            BOOST_TEST(co_await localvm::process::wait_exit(*again, 0ms));
            BOOST_TEST(!fs::exists(net.files().data));
            BOOST_TEST(!fs::exists(net.files().runtime));
            BOOST_TEST(lq::list_networks(o.data_dir).empty());
            co_await net.remove(); // a no-op now
        },
        60s);
}

BOOST_AUTO_TEST_CASE(a_switch_that_cannot_start_is_an_error_naming_it) {
    temp_dir dir;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            lq::network_options o;
            o.name = "lan";
            o.data_dir = dir.path / "data";
            o.runtime_dir = dir.path / "run";
            o.switch_binary = "false";
            lq::virtual_network net(co_await asio::this_coro::executor, o);
            co_await net.create();
            try {
                co_await net.join("a", dir.path / "data/a", dir.path / "run/a/qemu.pid",
                                  lq::default_mac("a", "lan"), "");
                BOOST_FAIL("joined without a switch");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::process_failed, e.what());
                BOOST_TEST(std::string(e.what()).find("exited during start") != std::string::npos,
                           e.what());
            }
            // Nothing recorded.
            BOOST_TEST((co_await net.query()).members.empty());
            co_await net.remove();
        },
        60s);
}
