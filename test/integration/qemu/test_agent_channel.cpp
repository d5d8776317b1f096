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
