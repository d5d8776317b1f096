// The guest agent client against the real agent (Debian's qemu-ga 7.2) run
// on the host over a unix socket: no guest needed.
#define BOOST_TEST_MODULE qga_agent
#include <localvm/error.hpp>
#include <localvm/qga/client.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "agent_process.hpp"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace asio = boost::asio;
namespace qga = localvm::qga;
namespace qmp = localvm::qmp;
using localvm::errc;
using localvm::test::agent_process;
using localvm::testing::run_coroutine;
using localvm::testing::step;
using namespace std::chrono_literals;
using stream = asio::local::stream_protocol;

namespace {

struct skip_without_agent {
    skip_without_agent() {
        if (!std::filesystem::exists(localvm::test::qemu_ga_path())) {
            std::fprintf(stderr, "qemu-ga not installed (package qemu-guest-agent): skipped\n");
            std::exit(77);
        }
    }
};
skip_without_agent skip_check;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string random_bytes(std::size_t n) {
    std::mt19937 gen(12345);
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(gen());
    return s;
}

// (GCC 12 miscompiles string literals inside co_await expressions: strings
// are built in locals first.)

// A raw connection, made with a blocking connect (it waits for room in the
// agent's listen queue, which a non-blocking one does not).
stream::socket raw_connect(asio::any_io_executor ex, const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        throw localvm::error(errc::io_error, "connect " + path + " failed");
    return stream::socket(ex, stream(), fd);
}

asio::awaitable<agent_process*> started(agent_process& a) {
    co_await step("qemu-ga socket", a.wait_for_socket(10s));
    co_return &a;
}

} // namespace

BOOST_AUTO_TEST_CASE(exec_exit_code_and_separate_output) {
    agent_process agent;
    run_coroutine([&]() -> asio::awaitable<void> {
        co_await started(agent);
        auto c = co_await qga::client::connect(agent.socket());
        co_await c.ping(5s);
        qga::exec_request r;
        r.argv = {"/bin/sh", "-c", "echo out; echo \"$GREETING\" >&2; cat; exit 7"};
        r.env = {"GREETING=hello from env", "PATH=/usr/bin:/bin"};
        r.input = std::string("in\0put", 6);
        auto s = co_await step("exec", c.exec(r, 10s));
        BOOST_TEST(s.exited);
        BOOST_TEST(s.exit_code.value_or(-1) == 7);
        BOOST_TEST(!s.signal);
        BOOST_TEST(s.out == std::string("out\nin\0put", 10));
        BOOST_TEST(s.err == "hello from env\n");
        BOOST_TEST(!s.out_truncated);
    });
}

BOOST_AUTO_TEST_CASE(exec_errors_and_a_killed_program) {
    agent_process agent;
    run_coroutine([&]() -> asio::awaitable<void> {
        co_await started(agent);
        auto c = co_await qga::client::connect(agent.socket());
        qga::exec_request missing;
        missing.argv = {"/nonexistent/program"};
        try {
            co_await c.exec_start(missing, 5s);
            BOOST_FAIL("no error");
        } catch (const qmp::command_error& e) {
            BOOST_TEST(e.command() == "guest-exec");
            BOOST_TEST(e.desc().find("/nonexistent/program") != std::string::npos, e.desc());
        }
        // A program that outlives its deadline: the error names its pid,
        // and another exec can kill it (what the manager does on timeout).
        qga::exec_request sleeper;
        sleeper.argv = {"sleep", "60"};
        std::int64_t pid = 0;
        try {
            co_await c.exec(sleeper, 300ms);
            BOOST_FAIL("no timeout");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::timeout);
            std::string what = e.what();
            auto at = what.find("guest pid ");
            BOOST_TEST_REQUIRE(at != std::string::npos, what);
            pid = std::stoll(what.substr(at + 10));
        }
        BOOST_TEST_REQUIRE(pid > 0);
        qga::exec_request kill;
        kill.argv = {"/bin/sh", "-c", "kill -KILL " + std::to_string(pid)};
        auto k = co_await c.exec(kill, 5s);
        BOOST_TEST(k.exit_code.value_or(-1) == 0);
        auto s = co_await c.exec_status(pid, 5s);
        for (int i = 0; !s.exited && i < 100; ++i) { // the agent reaps it on its own loop turn
            asio::steady_timer t(co_await asio::this_coro::executor, 10ms);
            co_await t.async_wait(asio::use_awaitable);
            s = co_await c.exec_status(pid, 5s);
        }
        BOOST_TEST(s.exited);
        BOOST_TEST(s.signal.value_or(0) == 9);
    });
}

BOOST_AUTO_TEST_CASE(file_write_read_round_trip) {
    agent_process agent;
    run_coroutine([&]() -> asio::awaitable<void> {
        co_await started(agent);
        auto c = co_await qga::client::connect(agent.socket());
        const auto data = random_bytes(300 * 1024 + 7);
        const auto path = agent.dir() + "/copied";
        std::string mode = "w";
        auto h = co_await c.file_open(path, mode, 5s);
        for (std::size_t at = 0; at < data.size(); at += 64 * 1024) {
            auto n = co_await c.file_write(h, data.substr(at, 64 * 1024), 5s);
            BOOST_TEST_REQUIRE(n == std::min<std::size_t>(64 * 1024, data.size() - at));
        }
        co_await c.file_close(h, 5s);
        BOOST_TEST(slurp(path) == data);

        mode = "r";
        h = co_await c.file_open(path, mode, 5s);
        std::string back;
        for (;;) {
            auto chunk = co_await c.file_read(h, 100 * 1024, 5s);
            back += chunk.data;
            if (chunk.eof)
                break;
        }
        co_await c.file_close(h, 5s);
        BOOST_TEST(back == data);

        // A path that does not exist: the agent's error, naming the call.
        try {
            std::string nowhere = agent.dir() + "/no/such/file";
            co_await c.file_open(nowhere, mode, 5s);
            BOOST_FAIL("no error");
        } catch (const qmp::command_error& e) {
            BOOST_TEST(e.command() == "guest-file-open");
            BOOST_TEST(std::string(e.what()).find("No such file or directory") !=
                       std::string::npos);
        }
        // A handle that was closed.
        try {
            co_await c.file_read(h, 10, 5s);
            BOOST_FAIL("no error");
        } catch (const qmp::command_error& e) {
            BOOST_TEST(e.command() == "guest-file-read");
        }
    });
}

BOOST_AUTO_TEST_CASE(interfaces_and_a_disabled_shutdown) {
    agent_process agent;
    run_coroutine([&]() -> asio::awaitable<void> {
        co_await started(agent);
        auto c = co_await qga::client::connect(agent.socket());
        auto ifs = co_await c.network_interfaces(5s);
        bool loopback = false;
        for (auto& i : ifs)
            for (auto& a : i.addresses)
                loopback =
                    loopback || (i.name == "lo" && a.address == "127.0.0.1" && a.prefix == 8);
        BOOST_TEST(loopback);
        // guest-shutdown is silent on success; disabled here, the agent
        // answers with an error, which must not be taken for acceptance.
        try {
            co_await c.shutdown(qga::shutdown_mode::powerdown, 5s);
            BOOST_FAIL("no error");
        } catch (const qmp::command_error& e) {
            BOOST_TEST(e.command() == "guest-shutdown");
            BOOST_TEST(e.desc().find("disabled") != std::string::npos, e.desc());
        }
        try {
            co_await c.set_time(std::chrono::nanoseconds(0), 5s);
            BOOST_FAIL("no error");
        } catch (const qmp::command_error& e) {
            BOOST_TEST(e.command() == "guest-set-time");
        }
        co_await c.ping(5s); // still in step
    });
}

BOOST_AUTO_TEST_CASE(half_request_from_a_previous_client_is_cut_by_the_resync) {
    agent_process agent;
    run_coroutine([&]() -> asio::awaitable<void> {
        co_await started(agent);
        auto ex = co_await asio::this_coro::executor;
        {
            auto raw = raw_connect(ex, agent.socket());
            std::string half = "{\"execute\":\"guest-ping\"";
            co_await asio::async_write(raw, asio::buffer(half), asio::use_awaitable);
        } // closed with the half request in the agent's parser
        {
            // The agent really holds it: a sync request without the 0xFF
            // marker is swallowed by the half-read request, no reply comes.
            auto raw = raw_connect(ex, agent.socket());
            std::string sync = "{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":5}}\n";
            co_await asio::async_write(raw, asio::buffer(sync), asio::use_awaitable);
            asio::steady_timer t(ex, 500ms);
            t.async_wait([&](boost::system::error_code ec) {
                if (!ec)
                    raw.cancel();
            });
            std::array<char, 256> buf{};
            boost::system::error_code ec;
            auto n = co_await raw.async_read_some(asio::buffer(buf),
                                                  asio::redirect_error(asio::use_awaitable, ec));
            t.cancel();
            BOOST_TEST(ec == asio::error::operation_aborted,
                       "the agent answered: " << std::string(buf.data(), n));
        }
        auto c = co_await qga::client::connect(agent.socket());
        co_await step("ping after resync", c.ping(5s));
        qga::exec_request r;
        r.argv = {"true"};
        auto s = co_await c.exec(r, 5s);
        BOOST_TEST(s.exit_code.value_or(-1) == 0);
    });
}

BOOST_AUTO_TEST_CASE(silent_socket_gives_a_deadline_error_naming_the_call) {
    run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        // A socket that accepts and never answers, as QEMU's chardev does
        // when no agent runs in the guest.
        auto dir = std::filesystem::temp_directory_path() /
                   ("localvm-qga-silent-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        auto path = (dir / "qga.sock").string();
        std::filesystem::remove(path);
        stream::acceptor acceptor(ex, stream::endpoint(path));
        stream::socket held(ex);
        acceptor.async_accept(held, [](boost::system::error_code) {});
        auto c = co_await qga::client::connect(path);
        try {
            co_await c.ping(300ms);
            BOOST_FAIL("no timeout");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::timeout);
            std::string what = e.what();
            BOOST_TEST(what.find("guest-ping") != std::string::npos, what);
            BOOST_TEST(what.find("300 ms") != std::string::npos, what);
            BOOST_TEST(what.find(path) != std::string::npos, what);
        }
        qga::exec_request r;
        r.argv = {"true"};
        try {
            co_await c.exec(r, 200ms);
            BOOST_FAIL("no timeout");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::timeout);
            BOOST_TEST(std::string(e.what()).find("guest-exec") != std::string::npos, e.what());
        }
        std::filesystem::remove_all(dir);
    });
}
