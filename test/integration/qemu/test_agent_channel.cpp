// The guest agent's channel on a real, idle QEMU (no guest OS runs): QEMU
// accepts the virtio-serial port on the runtime directory's socket, and the
// agent client reaches the socket but gets no answer, so a call ends at its
// deadline naming the call and the unanswered resync. The agent itself is
// tested on the host (test/integration/qga) and in guests (cloud suite).
#define BOOST_TEST_MODULE qemu_agent_channel
#include <localvm/qga/client.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include "common.hpp"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using namespace std::chrono_literals;
using lvtest::leak_check;

BOOST_TEST_GLOBAL_FIXTURE(leak_check);

BOOST_AUTO_TEST_CASE(agent_socket_in_the_runtime_dir_answers_nothing_without_a_guest) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            localvm::process::options img;
            img.argv = {"qemu-img", "create", "-q", "-f", "qcow2", h.base.string(), "64M"};
            co_await localvm::process::run_checked(img);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            co_await m.start(lvtest::small_vm());
            BOOST_TEST(m.files().agent_socket == m.files().runtime / "qga.sock");
            BOOST_TEST(fs::exists(m.files().agent_socket));
            auto c = co_await localvm::qga::client::connect(m.files().agent_socket.string());
            try {
                co_await c.ping(500ms);
                BOOST_FAIL("an agent answered in a VM without a guest OS");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
                std::string what = e.what();
                BOOST_TEST(what.find("guest-ping") != std::string::npos, what);
                BOOST_TEST(what.find("guest-sync-delimited") != std::string::npos, what);
            }
            c.close();
            co_await m.stop();
            BOOST_TEST(!fs::exists(m.files().agent_socket));
        },
        120s);
}

// The manager's agent calls on a VM whose agent never answers: each ends at
// its deadline with an error naming the call, and stop's agent rung gives
// way to quit.
BOOST_AUTO_TEST_CASE(agent_calls_on_a_silent_agent_end_at_their_deadlines) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            localvm::process::options img;
            img.argv = {"qemu-img", "create", "-q", "-f", "qcow2", h.base.string(), "64M"};
            co_await localvm::process::run_checked(img);
            auto o = h.options();
            o.stop.agent_timeout = 30s;
            localvm::qemu::manager m(ex, o);
            std::vector<std::string> log;
            m.set_output([&](std::string_view l) { log.emplace_back(l); });
            co_await m.create(h.base);
            co_await m.start(lvtest::small_vm());

            localvm::qemu::exec_options eo;
            eo.timeout = 1000ms;
            std::vector<std::string> argv = {"true"};
            try {
                co_await m.exec(argv, eo);
                BOOST_FAIL("an agent answered in a VM without a guest OS");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
                std::string what = e.what();
                BOOST_TEST(what.find("answer guest-exec") != std::string::npos, what);
            }
            try {
                co_await m.wait_ready(1500ms, localvm::qemu::ready_mode::agent);
                BOOST_FAIL("ready without a guest OS");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
                std::string what = e.what();
                BOOST_TEST(what.find("to answer guest-ping") != std::string::npos, what);
                BOOST_TEST(what.find("qemu-guest-agent") != std::string::npos, what);
            }
            localvm::qemu::copy_options co;
            co.timeout = 1000ms;
            std::string missing = "/no/such/file";
            try {
                co_await m.copy_out(missing, h.root / "out", co);
                BOOST_FAIL("a copy without a guest OS");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
            }
            BOOST_TEST(!fs::exists(h.root / "out"));

            log.clear();
            co_await m.stop();
            std::string said;
            for (auto& l : log)
                said += l + "\n";
            BOOST_TEST(said.find("asking the guest agent (guest-shutdown)") != std::string::npos,
                       said);
            BOOST_TEST(said.find("the guest agent did not take guest-shutdown") !=
                           std::string::npos,
                       said);
            auto st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->stopped_by == localvm::qemu::stop_step::quit));
        },
        120s);
}
