#define BOOST_TEST_MODULE qga_client
#include <localvm/error.hpp>
#include <localvm/qga/client.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

// GCC 12 false positive on asio's awaitable frame allocator when coroutine
// lambdas are inlined.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace asio = boost::asio;
namespace json = boost::json;
namespace qga = localvm::qga;
namespace qmp = localvm::qmp;
using localvm::errc;
using localvm::testing::run_coroutine;
using namespace std::chrono_literals;
using stream = asio::local::stream_protocol;

namespace std {
// Boost.Test prints optionals in failure messages.
template <class T>
std::ostream& boost_test_print_type(std::ostream& os, const std::optional<T>& v) {
    if (v)
        return os << *v;
    return os << "nullopt";
}
} // namespace std

#include "fake_agent.hpp"

using namespace lvqga_test;

BOOST_AUTO_TEST_CASE(first_call_resyncs_past_stale_data) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            // A previous client's unread reply and an old sync reply first.
            std::string stale = "{\"return\": {}, \"id\": 5}\n\xff{\"return\": 1}\n";
            co_await a.answer_sync(stale);
            co_await a.answer();
        }(p.agent_ptr));
        co_await p.client.ping(5s);
        BOOST_TEST_REQUIRE(p.agent.log.size() == 2u);
        BOOST_TEST(
            p.agent.log[0].rfind("<FF>{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":",
                                 0) == 0u);
        BOOST_TEST(p.agent.log[1] == "{\"execute\":\"guest-ping\",\"id\":2}\r\n");
    });
}

BOOST_AUTO_TEST_CASE(silent_agent_times_out_naming_the_call) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        auto e = co_await thrown(p.client.ping(200ms));
        BOOST_TEST(e.code() == errc::timeout);
        std::string what = e.what();
        BOOST_TEST(what.find("guest-ping") != std::string::npos, what);
        BOOST_TEST(what.find("guest-sync-delimited") != std::string::npos, what);
        BOOST_TEST(what.find("200 ms") != std::string::npos, what);
    });
}

BOOST_AUTO_TEST_CASE(after_a_timeout_the_late_reply_is_not_taken_for_the_next) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        auto& a = p.agent;
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            co_await a.answer_sync();
            co_await a.read(); // the exec: answered only after the client gave up
            asio::steady_timer t(co_await asio::this_coro::executor, 300ms);
            co_await t.async_wait(asio::use_awaitable);
            std::string late = "{\"return\": {\"pid\": 1}, \"id\": 2}\n";
            co_await a.send(late);
            co_await a.answer_sync();
            {
                json::value r = json::object{{"pid", 2}};
                co_await a.answer(r);
            }
        }(p.agent_ptr));
        qga::exec_request r;
        r.argv = {"true"};
        auto e = co_await thrown(p.client.exec_start(r, 100ms));
        BOOST_TEST(e.code() == errc::timeout);
        BOOST_TEST(std::string(e.what()).find("guest-exec") != std::string::npos);
        BOOST_TEST(std::string(e.what()).find("guest-sync-delimited") == std::string::npos);
        BOOST_TEST(co_await p.client.exec_start(r, 5s) == 2);
        BOOST_TEST(a.log.size() == 4u);
    });
}

BOOST_AUTO_TEST_CASE(error_reply_throws_command_error) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            co_await a.answer_sync();
            auto req = co_await a.read();
            std::string text = "{\"id\": " + json::serialize(req.at("id")) +
                               ", \"error\": {\"class\": \"GenericError\", \"desc\": \"failed to "
                               "open file '/nope' (mode: 'r'): No such file or directory\"}}\n";
            co_await a.send(text);
            co_await a.answer(1000);
        }(p.agent_ptr));
        try {
            co_await p.client.file_open("/nope", "r", 5s);
            BOOST_FAIL("no error");
        } catch (const qmp::command_error& e) {
            BOOST_TEST(e.code() == errc::qmp_error);
            BOOST_TEST(e.command() == "guest-file-open");
            BOOST_TEST(e.error_class() == "GenericError");
            BOOST_TEST(e.desc().find("No such file") != std::string::npos);
        }
        // The session is still in step: no resync before the next call.
        BOOST_TEST(co_await p.client.file_open("/yes", "r", 5s) == 1000);
        BOOST_TEST(p.agent.log.size() == 3u);
    });
}

BOOST_AUTO_TEST_CASE(bad_reply_is_a_protocol_error_and_forces_a_resync) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            co_await a.answer_sync();
            {
                json::value r = json::object{{"pid", "one"}};
                co_await a.answer(r);
            } // wrong shape
            co_await a.read();
            std::string other = "{\"return\": {}, \"id\": 77}\n"; // not our id
            co_await a.send(other);
            co_await a.answer_sync();
            co_await a.answer();
        }(p.agent_ptr));
        qga::exec_request r;
        r.argv = {"true"};
        auto e = co_await thrown(p.client.exec_start(r, 5s));
        BOOST_TEST(e.code() == errc::protocol_error);
        BOOST_TEST(std::string(e.what()).find("{\"pid\":\"one\"}") != std::string::npos, e.what());
        e = co_await thrown(p.client.ping(5s));
        BOOST_TEST(e.code() == errc::protocol_error);
        co_await p.client.ping(5s);
        BOOST_TEST(p.agent.log.size() == 5u);
    });
}

BOOST_AUTO_TEST_CASE(connection_end_is_monitor_closed_naming_the_peer) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            co_await a.answer_sync();
            co_await a.read();
            a.socket.close();
        }(p.agent_ptr));
        auto e = co_await thrown(p.client.network_interfaces(5s));
        BOOST_TEST(e.code() == errc::monitor_closed);
        BOOST_TEST(std::string(e.what()).find("guest-network-get-interfaces") != std::string::npos);
        BOOST_TEST(std::string(e.what()).find("fake") != std::string::npos);
        e = co_await thrown(p.client.ping(5s));
        BOOST_TEST(e.code() == errc::monitor_closed);
    });
}

BOOST_AUTO_TEST_CASE(shutdown_is_accepted_by_the_ping_or_the_end) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        {
            auto p = make_pair(ex);
            spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
                auto& a = *keep;
                co_await a.answer_sync();
                co_await a.read();   // guest-shutdown: silent
                co_await a.answer(); // guest-ping
            }(p.agent_ptr));
            co_await p.client.shutdown(qga::shutdown_mode::powerdown, 5s);
            BOOST_TEST(p.agent.log[1] == "{\"execute\":\"guest-shutdown\",\"arguments\":{\"mode\":"
                                         "\"powerdown\"},\"id\":2}\r\n");
        }
        {
            auto p = make_pair(ex);
            spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
                auto& a = *keep;
                co_await a.answer_sync();
                co_await a.read();
                a.socket.close(); // the guest went down before the ping
            }(p.agent_ptr));
            co_await p.client.shutdown(qga::shutdown_mode::halt, 5s);
        }
        {
            auto p = make_pair(ex);
            spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
                auto& a = *keep;
                co_await a.answer_sync();
                auto req = co_await a.read();
                std::string text =
                    "{\"id\": " + json::serialize(req.at("id")) +
                    ", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The "
                    "command guest-shutdown has been disabled for this instance\"}}\n";
                co_await a.send(text);
            }(p.agent_ptr));
            try {
                co_await p.client.shutdown(qga::shutdown_mode::powerdown, 5s);
                BOOST_FAIL("no error");
            } catch (const qmp::command_error& e) {
                BOOST_TEST(e.error_class() == "CommandNotFound");
            }
        }
        {
            // An end during the resync is no acceptance.
            auto p = make_pair(ex);
            spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
                auto& a = *keep;
                co_await a.read();
                a.socket.close();
            }(p.agent_ptr));
            auto e = co_await thrown(p.client.shutdown(qga::shutdown_mode::powerdown, 5s));
            BOOST_TEST(e.code() == errc::monitor_closed);
        }
    });
}

BOOST_AUTO_TEST_CASE(overlapping_calls_run_one_after_another) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            co_await a.answer_sync();
            for (int i = 0; i < 3; ++i) {
                auto req = co_await a.read();
                // Nothing else was sent while this call was unanswered.
                BOOST_TEST(a.buf.empty());
                auto h = req.at("arguments").at("handle");
                std::string text = json::serialize(json::object{
                                       {"return", json::object{{"count", h}, {"eof", false}}},
                                       {"id", req.at("id")}}) +
                                   "\n";
                co_await a.send(text);
            }
        }(p.agent_ptr));
        std::vector<std::size_t> done;
        int running = 3;
        asio::steady_timer all(ex, std::chrono::steady_clock::time_point::max());
        for (int i = 1; i <= 3; ++i)
            asio::co_spawn(
                ex,
                [&, i]() -> asio::awaitable<void> {
                    done.push_back(co_await p.client.file_write(i, "x", 5s));
                    if (--running == 0)
                        all.cancel();
                },
                asio::detached);
        boost::system::error_code ec;
        co_await all.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        BOOST_TEST(done == (std::vector<std::size_t>{1, 2, 3}));
    });
}

BOOST_AUTO_TEST_CASE(exec_polls_until_exit) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            co_await a.answer_sync();
            {
                json::value r = json::object{{"pid", 4242}};
                co_await a.answer(r);
            }
            {
                json::value r = json::object{{"exited", false}};
                co_await a.answer(r);
            }
            {
                json::value r = json::object{{"exited", false}};
                co_await a.answer(r);
            }
            json::value done = json::parse(
                R"({"exitcode": 7, "out-data": "b3V0Cg==", "err-data": "ZXJyCg==", "exited": true})");
            co_await a.answer(done);
        }(p.agent_ptr));
        qga::exec_request r;
        r.argv = {"/bin/sh", "-c", "echo out; echo err >&2; exit 7"};
        auto s = co_await p.client.exec(r, 5s);
        BOOST_TEST(s.exit_code == 7);
        BOOST_TEST(s.out == "out\n");
        BOOST_TEST(s.err == "err\n");
        BOOST_TEST(p.agent.log.size() == 5u);
        BOOST_TEST(p.agent.log[2] ==
                   "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":4242},\"id\":3}\r\n");
    });
}

BOOST_AUTO_TEST_CASE(exec_timeout_names_the_running_program) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        qga::client_options o;
        o.exec_poll_first = 10ms;
        auto p = make_pair(ex, o);
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            co_await a.answer_sync();
            {
                json::value r = json::object{{"pid", 99}};
                co_await a.answer(r);
            }
            json::value running = json::object{{"exited", false}};
            for (;;)
                co_await a.answer(running);
        }(p.agent_ptr));
        qga::exec_request r;
        r.argv = {"sleep", "100"};
        auto e = co_await thrown(p.client.exec(r, 300ms));
        BOOST_TEST(e.code() == errc::timeout);
        BOOST_TEST(std::string(e.what()).find("sleep (guest pid 99") != std::string::npos,
                   e.what());
    });
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused_before_sending) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        auto e = co_await thrown(p.client.exec_start(qga::exec_request{}, 1s));
        BOOST_TEST(e.code() == errc::invalid_argument);
        BOOST_TEST(p.agent.socket.available() == 0u);
        std::string missing = "/nonexistent/qga.sock";
        e = co_await thrown(qga::client::connect(missing));
        BOOST_TEST(e.code() == errc::not_found);
    });
}

BOOST_AUTO_TEST_CASE(cancelled_call_leaves_the_client_usable) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        asio::cancellation_signal cancel;
        bool aborted = false;
        int finished = 0;
        asio::co_spawn(ex, p.client.ping(5s),
                       asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
                           try {
                               if (e)
                                   std::rethrow_exception(e);
                           } catch (const boost::system::system_error& x) {
                               aborted = x.code() == asio::error::operation_aborted;
                           }
                           ++finished;
                       }));
        co_await p.agent.read(); // the sync, never answered
        cancel.emit(asio::cancellation_type::terminal);
        asio::steady_timer t(ex, 50ms);
        co_await t.async_wait(asio::use_awaitable);
        BOOST_TEST(finished == 1);
        BOOST_TEST(aborted);
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            co_await a.answer_sync();
            co_await a.answer();
        }(p.agent_ptr));
        co_await p.client.ping(5s);
    });
}

BOOST_AUTO_TEST_CASE(connect_waits_for_room_in_a_full_listen_queue) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto path = (std::filesystem::temp_directory_path() /
                     ("localvm-qga-queue-" + std::to_string(::getpid()) + ".sock"))
                        .string();
        std::filesystem::remove(path);
        struct remove_at_end {
            std::string p;
            ~remove_at_end() { std::filesystem::remove(p); }
        } cleanup{path};
        // A server that queues one connection and accepts none yet, as a
        // QEMU chardev busy with another client.
        stream::acceptor acceptor(ex);
        acceptor.open();
        acceptor.bind(stream::endpoint(path));
        acceptor.listen(0);
        int filler = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
        BOOST_TEST_REQUIRE(::connect(filler, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        qga::client_options o;
        o.connect_timeout = 200ms;
        auto e = co_await thrown(qga::client::connect(path, o));
        BOOST_TEST(e.code() == errc::timeout);
        BOOST_TEST(std::string(e.what()).find("listen queue") != std::string::npos, e.what());
        // Room appears once the server takes the queued connection.
        asio::steady_timer later(ex, 50ms);
        later.async_wait([&](boost::system::error_code) {
            acceptor.async_accept(
                [filler](boost::system::error_code, stream::socket) { ::close(filler); });
        });
        o.connect_timeout = 5s;
        auto c = co_await qga::client::connect(path, o);
        // (co_await inside a braced initializer miscompiles with GCC 12.)
        auto accepted = co_await acceptor.async_accept(asio::use_awaitable);
        auto agent = std::make_shared<fake_agent>(fake_agent{std::move(accepted), {}, {}});
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            co_await keep->answer_sync();
            co_await keep->answer();
        }(agent));
        co_await c.ping(5s);
    });
}
