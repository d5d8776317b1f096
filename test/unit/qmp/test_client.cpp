#define BOOST_TEST_MODULE qmp_client
#include <localvm/error.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/qmp/migration.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <random>
#include <unistd.h>

// GCC 12 false positive on asio's awaitable frame allocator when coroutine
// lambdas are inlined (the frame's own operator new/delete pair is used).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace asio = boost::asio;
namespace json = boost::json;
namespace qmp = localvm::qmp;
using localvm::errc;
using namespace std::chrono_literals;
using stream = asio::local::stream_protocol;

namespace {

const std::string greeting_line =
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}})"
    "\r\n";

std::string socket_path() {
    static int n = 0;
    auto p = std::filesystem::temp_directory_path() /
             ("localvm-qmp-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + ".sock");
    std::filesystem::remove(p);
    return p.string();
}

// The server side of one connection, scripted by each test.
struct peer {
    stream::socket socket;
    std::string buf;

    asio::awaitable<json::object> read_command() {
        auto n = co_await asio::async_read_until(socket, asio::dynamic_buffer(buf), '\n',
                                                 asio::use_awaitable);
        auto line = buf.substr(0, n);
        buf.erase(0, n);
        co_return json::parse(line).as_object();
    }
    asio::awaitable<void> send(std::string text) {
        co_await asio::async_write(socket, asio::buffer(text), asio::use_awaitable);
    }
    static std::string reply(const json::value& id, const json::value& result = json::object{}) {
        return json::serialize(json::object{{"return", result}, {"id", id}}) + "\r\n";
    }
    static std::string event(const std::string& name, json::object data = {}) {
        json::object o{{"event", name},
                       {"timestamp", json::object{{"seconds", 1}, {"microseconds", 2}}}};
        if (!data.empty())
            o["data"] = std::move(data);
        return json::serialize(o) + "\r\n";
    }
    // Greeting and capability negotiation; returns the qmp_capabilities command.
    asio::awaitable<json::object> handshake(std::string greeting = greeting_line) {
        co_await send(std::move(greeting));
        auto caps = co_await read_command();
        BOOST_TEST(caps.at("execute").as_string() == "qmp_capabilities");
        co_await send(reply(caps.at("id")));
        co_return caps;
    }
};

struct server {
    std::string path = socket_path();
    stream::acceptor acceptor;
    explicit server(asio::any_io_executor ex) : acceptor(ex, stream::endpoint(path)) {}
    ~server() { std::filesystem::remove(path); }
    asio::awaitable<peer> accept() {
        // (co_await inside a braced initializer miscompiles with GCC 12.)
        auto s = co_await acceptor.async_accept(asio::use_awaitable);
        co_return peer{std::move(s), {}};
    }
};

// Runs coroutines concurrently and waits for all of them; rethrows the first failure.
struct join {
    asio::any_io_executor ex;
    int running = 0;
    std::exception_ptr failure;
    asio::steady_timer done{ex, std::chrono::steady_clock::time_point::max()};

    explicit join(asio::any_io_executor e) : ex(std::move(e)) {}

    // `f` is a coroutine function object; co_spawn keeps it (and its
    // captures) alive until the coroutine ends.
    template <class F> void spawn(F f) {
        ++running;
        asio::co_spawn(ex, std::move(f), [this](std::exception_ptr e) {
            if (e && !failure)
                failure = e;
            if (--running == 0)
                done.cancel();
        });
    }
    // Waits for all, ignoring their failures: a scripted server's last read
    // ends in EOF once the client closes, as expected.
    asio::awaitable<void> wait_ignoring_eof() {
        try {
            co_await wait();
        } catch (const std::exception&) {
        }
    }
    asio::awaitable<void> wait() {
        while (running > 0) {
            boost::system::error_code ec;
            co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (failure)
            std::rethrow_exception(failure);
    }
};

template <class F> void expect_error(errc code, F&& f) {
    try {
        f();
        BOOST_FAIL("no exception");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == code, e.what());
    }
}

template <class T>
asio::awaitable<void> expect_error_co(errc code, asio::awaitable<T> a, std::string* what = nullptr) {
    try {
        co_await std::move(a);
        BOOST_FAIL("no exception");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == code, e.what());
        if (what)
            *what = e.what();
    }
}

void run(std::function<asio::awaitable<void>()> body) {
    localvm::testing::run_coroutine(std::move(body), 30s);
}

} // namespace

BOOST_AUTO_TEST_CASE(negotiates_oob_only_when_offered_and_asked) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        struct want {
            bool ask;
            std::string greeting;
            bool expect;
        };
        std::string no_oob = greeting_line;
        no_oob.replace(no_oob.find("[\"oob\"]"), 7, "[]");
        for (auto w : {want{true, greeting_line, true}, want{false, greeting_line, false},
                       want{true, no_oob, false}}) {
            json::object caps;
            join j{ex};
            j.spawn([&]() -> asio::awaitable<void> {
                auto p = co_await srv.accept();
                caps = co_await p.handshake(w.greeting);
                auto cmd = co_await p.read_command();
                BOOST_TEST(cmd.at("execute").as_string() == "query-status");
                // (Braced JSON inside a co_await expression trips a GCC 12 bug.)
                json::object status{{"status", "paused"}, {"running", false}};
                co_await p.send(peer::reply(cmd.at("id"), status));
            });
            auto c = co_await qmp::client::connect(srv.path, {.enable_oob = w.ask});
            BOOST_TEST(c.oob_enabled() == w.expect);
            BOOST_TEST(c.greeting().qemu.major == 7);
            auto st = co_await c.query_status();
            BOOST_TEST(st.status == "paused");
            BOOST_TEST(!st.running);
            co_await j.wait();
            BOOST_TEST(caps.contains("arguments") == w.expect);
            if (w.expect)
                BOOST_TEST(json::serialize(caps.at("arguments")) == R"({"enable":["oob"]})");
        }
    });
}

// Without oob asked, qmp_capabilities does not depend on the greeting: it
// is sent at once and shares the greeting's round trip. A server that reads
// it before greeting (QEMU greets first, but the order on the wire is the
// same) is answered; connect completes with both.
BOOST_AUTO_TEST_CASE(capabilities_share_the_greetings_round_trip) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        join j{ex};
        j.spawn([&]() -> asio::awaitable<void> {
            auto p = co_await srv.accept();
            auto caps = co_await p.read_command(); // before any greeting
            BOOST_TEST(caps.at("execute").as_string() == "qmp_capabilities");
            BOOST_TEST(!caps.contains("arguments"));
            co_await p.send(greeting_line + peer::reply(caps.at("id")));
        });
        auto c = co_await qmp::client::connect(srv.path);
        BOOST_TEST(!c.oob_enabled());
        BOOST_TEST(c.greeting().qemu.major == 7);
        co_await j.wait();
    });
}

BOOST_AUTO_TEST_CASE(hundred_concurrent_executes_with_shuffled_replies_and_events) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        const int n = 100;
        join server_side{ex};
        server_side.spawn([&]() -> asio::awaitable<void> {
            auto p = co_await srv.accept();
            co_await p.handshake();
            std::vector<json::object> cmds;
            for (int i = 0; i < n; ++i)
                cmds.push_back(co_await p.read_command());
            std::mt19937 rng(42);
            std::shuffle(cmds.begin(), cmds.end(), rng);
            // Replies in shuffled order, an event after every third, all in
            // one write now and then so that reads hold many messages.
            std::string batch;
            int ev = 0;
            for (auto& c : cmds) {
                batch += peer::reply(c.at("id"), json::object{{"echo", c.at("arguments").at("value")}});
                if (ev < n && (&c - cmds.data()) % 3 == 0)
                    batch += peer::event("TICK", json::object{{"n", ev++}});
                if (batch.size() > 1000) {
                    co_await p.send(std::exchange(batch, {}));
                }
            }
            co_await p.send(batch);
            co_await p.read_command(); // wait for the client to close
        });

        auto c = co_await qmp::client::connect(srv.path);
        auto ticks = c.subscribe("TICK");
        auto all = c.subscribe();
        join calls{ex};
        int ok = 0;
        for (int i = 0; i < n; ++i)
            calls.spawn([&, i]() -> asio::awaitable<void> {
                json::object args{{"value", i}};
                auto v = co_await c.execute("echo", std::move(args));
                BOOST_TEST(v.at("echo").as_int64() == i);
                ++ok;
            });
        co_await calls.wait();
        BOOST_TEST(ok == n);
        for (int i = 0; i < 34; ++i) {
            auto e = co_await ticks.next(5s);
            BOOST_TEST(e.name == "TICK");
            BOOST_TEST(e.data.at("n").as_int64() == i);
        }
        BOOST_TEST(!ticks.try_next());
        BOOST_TEST(all.buffered() == 34u);
        BOOST_TEST(ticks.lost() == 0u);
        c.close();
        BOOST_TEST((c.end() == qmp::connection_end::local));
        co_await server_side.wait_ignoring_eof();
    });
}

BOOST_AUTO_TEST_CASE(qmp_error_keeps_class_and_desc) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        join j{ex};
        j.spawn([&]() -> asio::awaitable<void> {
            auto p = co_await srv.accept();
            co_await p.handshake();
            auto cmd = co_await p.read_command();
            co_await p.send(R"({"id": )" + json::serialize(cmd.at("id")) +
                            R"(, "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}})"
                            "\r\n");
            cmd = co_await p.read_command();
            co_await p.send(peer::reply(cmd.at("id"), "VM status: paused\r\n"));
        });
        auto c = co_await qmp::client::connect(srv.path);
        try {
            co_await c.execute("nope");
            BOOST_FAIL("no exception");
        } catch (const qmp::command_error& e) {
            BOOST_TEST(e.code() == errc::qmp_error);
            BOOST_TEST(e.command() == "nope");
            BOOST_TEST(e.error_class() == "CommandNotFound");
            BOOST_TEST(e.desc() == "The command nope has not been found");
            BOOST_TEST(std::string(e.what()).find("CommandNotFound") != std::string::npos);
        }
        // The connection goes on.
        BOOST_TEST(co_await c.human_monitor_command("info status") == "VM status: paused\r\n");
        co_await j.wait();
    });
}

BOOST_AUTO_TEST_CASE(shutdown_before_quit_reply_then_eof_is_a_clean_end) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        join j{ex};
        j.spawn([&]() -> asio::awaitable<void> {
            auto p = co_await srv.accept();
            co_await p.handshake();
            auto cmd = co_await p.read_command();
            BOOST_TEST(cmd.at("execute").as_string() == "quit");
            auto bytes = peer::event("SHUTDOWN", {{"guest", false}, {"reason", "host-qmp-quit"}}) +
                         peer::reply(cmd.at("id"));
            co_await p.send(bytes);
            p.socket.close();
        });
        auto c = co_await qmp::client::connect(srv.path);
        auto sub = c.subscribe("SHUTDOWN");
        co_await c.quit();
        auto e = co_await sub.next(5s);
        BOOST_TEST(e.data.at("reason").as_string() == "host-qmp-quit");
        BOOST_TEST((co_await c.wait_closed(5s) == qmp::connection_end::clean));
        BOOST_TEST_REQUIRE(c.shutdown_event().has_value());
        BOOST_TEST(c.shutdown_event()->data.at("reason").as_string() == "host-qmp-quit");
        co_await expect_error_co(errc::monitor_closed, sub.next(5s));
        co_await j.wait();
    });
}

BOOST_AUTO_TEST_CASE(server_closing_mid_command_fails_every_waiter_promptly) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        join j{ex};
        j.spawn([&]() -> asio::awaitable<void> {
            auto p = co_await srv.accept();
            co_await p.handshake();
            for (int i = 0; i < 10; ++i)
                co_await p.read_command();
            p.socket.close(); // QEMU died
        });
        auto c = co_await qmp::client::connect(srv.path);
        auto sub = c.subscribe();
        join calls{ex};
        int closed = 0;
        for (int i = 0; i < 10; ++i)
            calls.spawn([&]() -> asio::awaitable<void> {
                std::string what;
                co_await expect_error_co(errc::monitor_closed, c.execute("query-status"), &what);
                BOOST_TEST(what.find("query-status") != std::string::npos, what);
                ++closed;
            });
        auto started = std::chrono::steady_clock::now();
        co_await calls.wait();
        BOOST_TEST(closed == 10);
        BOOST_TEST((std::chrono::steady_clock::now() - started < 10s));
        BOOST_TEST((c.end() == qmp::connection_end::unexpected));
        BOOST_TEST((co_await c.wait_closed() == qmp::connection_end::unexpected));
        BOOST_TEST(!c.shutdown_event());
        co_await expect_error_co(errc::monitor_closed, c.execute("cont"));
        co_await expect_error_co(errc::monitor_closed, sub.next());
        co_await expect_error_co(errc::monitor_closed, c.subscribe("STOP").next());
        co_await j.wait();
    });
}

BOOST_AUTO_TEST_CASE(connect_deadline_fires_without_greeting) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        std::optional<peer> silent;
        join j{ex};
        j.spawn([&]() -> asio::awaitable<void> { silent = co_await srv.accept(); });
        auto started = std::chrono::steady_clock::now();
        std::string what;
        co_await expect_error_co(errc::timeout,
                                 qmp::client::connect(srv.path, {.connect_timeout = 200ms}), &what);
        BOOST_TEST((std::chrono::steady_clock::now() - started >= 200ms));
        BOOST_TEST(what.find(srv.path) != std::string::npos, what);
        co_await j.wait();
        // The client let go of the connection: the silent server sees EOF,
        // after the one command sent without waiting for the greeting.
        std::string got;
        boost::system::error_code ec;
        co_await asio::async_read(silent->socket, asio::dynamic_buffer(got),
                                  asio::redirect_error(asio::use_awaitable, ec));
        BOOST_TEST(ec == asio::error::eof);
        BOOST_TEST(got.find("qmp_capabilities") != std::string::npos, got);
        BOOST_TEST(std::count(got.begin(), got.end(), '\n') == 1, got);

        co_await expect_error_co(errc::not_found, qmp::client::connect(socket_path()));
        co_await expect_error_co(errc::invalid_argument,
                                 qmp::client::connect(std::string(200, 'x')));
    });
}

BOOST_AUTO_TEST_CASE(cancelled_execute_leaves_connection_and_others_working) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        join j{ex};
        asio::cancellation_signal cancel_slow;
        j.spawn([&]() -> asio::awaitable<void> {
            auto p = co_await srv.accept();
            co_await p.handshake();
            auto slow = co_await p.read_command();
            auto other = co_await p.read_command();
            BOOST_TEST(slow.at("execute").as_string() == "slow");
            // Both are in flight; the client now cancels "slow".
            cancel_slow.emit(asio::cancellation_type::terminal);
            co_await p.send(peer::reply(other.at("id"), "other"));
            co_await p.send(peer::reply(slow.at("id"), "late")); // discarded
            auto timed = co_await p.read_command();
            auto next = co_await p.read_command();
            co_await p.send(peer::reply(next.at("id"), "next"));
            co_await p.send(peer::reply(timed.at("id"), "too late")); // discarded
            co_await p.read_command();
        });
        auto c = co_await qmp::client::connect(srv.path);
        join calls{ex};
        std::exception_ptr slow_result;
        bool slow_done = false;
        asio::co_spawn(ex, c.execute("slow"),
                       asio::bind_cancellation_slot(cancel_slow.slot(),
                                                    [&](std::exception_ptr e, json::value) {
                                                        slow_result = e;
                                                        slow_done = true;
                                                    }));
        json::value other;
        calls.spawn([&]() -> asio::awaitable<void> { other = co_await c.execute("other"); });
        co_await calls.wait();
        BOOST_TEST(other.as_string() == "other");
        BOOST_TEST_REQUIRE(slow_done);
        try {
            std::rethrow_exception(slow_result);
        } catch (const boost::system::system_error& e) {
            BOOST_TEST(e.code() == asio::error::operation_aborted);
        }
        // A per-call timeout behaves the same way.
        co_await expect_error_co(errc::timeout, c.execute("timed", {}, {.timeout = 100ms}));
        BOOST_TEST((co_await c.execute("next")).as_string() == "next");
        BOOST_TEST((c.end() == qmp::connection_end::open));
        c.close();
        co_await j.wait_ignoring_eof();
    });
}

BOOST_AUTO_TEST_CASE(slow_subscriber_overflow_is_counted) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        join j{ex};
        j.spawn([&]() -> asio::awaitable<void> {
            auto p = co_await srv.accept();
            co_await p.handshake();
            auto ping = co_await p.read_command();
            std::string all;
            for (int i = 0; i < 10; ++i)
                all += peer::event(i % 2 ? "ODD" : "EVEN", {{"n", i}});
            co_await p.send(all + peer::reply(ping.at("id")));
            co_await p.read_command();
        });
        auto c = co_await qmp::client::connect(srv.path, {.event_buffer = 4});
        auto small = c.subscribe();
        auto big = c.subscribe(std::string{}, 100);
        auto odd = c.subscribe([](const qmp::event& e) { return e.data.at("n").as_int64() % 2 == 1; });
        co_await c.execute("ping");
        BOOST_TEST(small.buffered() == 4u);
        BOOST_TEST(small.lost() == 6u);
        BOOST_TEST(big.buffered() == 10u);
        BOOST_TEST(big.lost() == 0u);
        BOOST_TEST(odd.buffered() == 4u);
        BOOST_TEST(odd.lost() == 1u);
        for (int i = 0; i < 4; ++i)
            BOOST_TEST((co_await small.next()).data.at("n").as_int64() == i);
        for (int i = 0; i < 10; ++i)
            BOOST_TEST((co_await big.next()).data.at("n").as_int64() == i);
        for (int i = 1; i < 8; i += 2)
            BOOST_TEST((co_await odd.next()).name == "ODD");
        co_await expect_error_co(errc::timeout, small.next(50ms));
        c.close();
        co_await j.wait_ignoring_eof();
    });
}

BOOST_AUTO_TEST_CASE(malformed_or_oversized_server_data_closes_with_its_code) {
    for (auto [bytes, code] : {std::pair{std::string("{\"no\": \"qmp\"}\r\n"), errc::protocol_error},
                               std::pair{"{\"return\": \"" + std::string(2000, 'x') + "\"}\r\n",
                                         errc::message_too_large}}) {
        run([&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            server srv(ex);
            join j{ex};
            j.spawn([&]() -> asio::awaitable<void> {
                auto p = co_await srv.accept();
                co_await p.handshake();
                co_await p.read_command();
                co_await p.send(bytes);
                std::array<char, 16> b;
                boost::system::error_code ec;
                co_await p.socket.async_read_some(asio::buffer(b),
                                                  asio::redirect_error(asio::use_awaitable, ec));
            });
            auto c = co_await qmp::client::connect(srv.path, {.max_message_size = 1000});
            co_await expect_error_co(code, c.execute("query-status"));
            BOOST_TEST((c.end() == qmp::connection_end::protocol_error));
            co_await j.wait();
        });
    }
}

BOOST_AUTO_TEST_CASE(lanes_spread_overlapping_commands_and_deliver_each_event_once) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server a(ex), b(ex);
        const int n = 40;
        std::array<int, 2> served{0, 0};
        int ticks_sent = 0;
        join servers{ex};
        // Every monitor answers its own commands; events go to all of them,
        // as QEMU's do (lane 1 sends its copies before its last reply).
        auto serve = [&](server& srv, int lane) {
            servers.spawn([&, lane]() -> asio::awaitable<void> {
                auto p = co_await srv.accept();
                co_await p.handshake();
                for (;;) {
                    auto cmd = co_await p.read_command();
                    if (cmd.at("execute").as_string() == "done") {
                        std::string copies;
                        for (int i = 0; lane == 1 && i < ticks_sent; ++i)
                            copies += peer::event("TICK", json::object{{"n", i}});
                        co_await p.send(copies + peer::reply(cmd.at("id")));
                        break;
                    }
                    ++served[lane];
                    json::object result{{"lane", lane}, {"echo", cmd.at("arguments").at("value")}};
                    auto bytes = peer::reply(cmd.at("id"), result);
                    if (lane == 0)
                        bytes += peer::event("TICK", json::object{{"n", ticks_sent++}});
                    co_await p.send(bytes);
                }
                co_await p.read_command(); // until the client closes
            });
        };
        serve(a, 0);
        serve(b, 1);
        std::vector<std::string> paths{a.path, b.path};
        auto c = co_await qmp::client::connect_lanes(paths);
        BOOST_TEST(c.lanes() == 2u);
        auto ticks = c.subscribe("TICK");
        join calls{ex};
        for (int i = 0; i < n; ++i)
            calls.spawn([&, i]() -> asio::awaitable<void> {
                json::object args{{"value", i}};
                auto v = co_await c.execute("echo", std::move(args));
                BOOST_TEST(v.at("echo").as_int64() == i);
            });
        co_await calls.wait();
        BOOST_TEST(served[0] + served[1] == n);
        BOOST_TEST(served[0] >= n / 4, "lane 0 served " << served[0]);
        BOOST_TEST(served[1] >= n / 4, "lane 1 served " << served[1]);
        // Two overlapping calls take one lane each: lane 1's event copies
        // are in before its reply, and none of them is delivered.
        join finish{ex};
        finish.spawn([&]() -> asio::awaitable<void> { co_await c.execute("done"); });
        finish.spawn([&]() -> asio::awaitable<void> { co_await c.execute("done"); });
        co_await finish.wait();
        BOOST_TEST(ticks.buffered() == static_cast<std::size_t>(ticks_sent));
        for (int i = 0; i < ticks_sent; ++i)
            BOOST_TEST((co_await ticks.next(5s)).data.at("n").as_int64() == i);
        BOOST_TEST(!ticks.try_next());
        BOOST_TEST(ticks.lost() == 0u);
        c.close();
        co_await servers.wait_ignoring_eof();
    });
}

BOOST_AUTO_TEST_CASE(one_lane_ending_ends_every_lane) {
    // Lane 1 ends mid-command: QEMU died (waiters on both lanes fail at
    // once), or it announced SHUTDOWN on that lane first (a clean end).
    for (bool announced : {false, true}) {
        run([&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            server a(ex), b(ex);
            join servers{ex};
            servers.spawn([&]() -> asio::awaitable<void> {
                auto p = co_await a.accept();
                co_await p.handshake();
                co_await p.read_command(); // never answered
                co_await p.read_command(); // EOF once the client gives up
            });
            servers.spawn([&]() -> asio::awaitable<void> {
                auto p = co_await b.accept();
                co_await p.handshake();
                co_await p.read_command();
                json::object reason{{"guest", true}, {"reason", "guest-shutdown"}};
                if (announced)
                    co_await p.send(peer::event("SHUTDOWN", reason));
                p.socket.close();
            });
            std::vector<std::string> paths{a.path, b.path};
            auto c = co_await qmp::client::connect_lanes(paths);
            join calls{ex};
            int closed = 0;
            for (int i = 0; i < 2; ++i)
                calls.spawn([&]() -> asio::awaitable<void> {
                    std::string what;
                    co_await expect_error_co(errc::monitor_closed, c.execute("query-status"),
                                             &what);
                    BOOST_TEST(what.find(b.path) != std::string::npos, what);
                    ++closed;
                });
            co_await calls.wait();
            BOOST_TEST(closed == 2);
            auto want = announced ? qmp::connection_end::clean : qmp::connection_end::unexpected;
            BOOST_TEST((co_await c.wait_closed(5s) == want));
            BOOST_TEST(c.shutdown_event().has_value() == announced);
            co_await expect_error_co(errc::monitor_closed, c.execute("cont"));
            co_await servers.wait_ignoring_eof();
        });
    }
}

BOOST_AUTO_TEST_CASE(lanes_connect_errors_name_the_path_and_leave_nothing_open) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server a(ex);
        std::optional<peer> first;
        join j{ex};
        j.spawn([&]() -> asio::awaitable<void> {
            first = co_await a.accept();
            co_await first->handshake();
        });
        auto missing = socket_path();
        std::vector<std::string> paths{a.path, missing};
        std::string what;
        co_await expect_error_co(errc::not_found, qmp::client::connect_lanes(paths), &what);
        BOOST_TEST(what.find(missing) != std::string::npos, what);
        co_await j.wait();
        // The lane that did connect was closed: its server sees EOF.
        std::array<char, 16> buf;
        boost::system::error_code ec;
        co_await first->socket.async_read_some(asio::buffer(buf),
                                               asio::redirect_error(asio::use_awaitable, ec));
        BOOST_TEST(ec == asio::error::eof);
        co_await expect_error_co(errc::invalid_argument,
                                 qmp::client::connect_lanes(std::vector<std::string>()));
    });
}

BOOST_AUTO_TEST_CASE(events_the_first_lane_holds_outlive_another_lane_ending_first) {
    // QEMU writes its last events to every monitor, then closes them all.
    // The first lane reads in 4 KiB steps, so another lane's EOF can be
    // handled while the first still holds unread events: they must still
    // reach subscribers, in order.
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server a(ex), b(ex);
        const int n = 40;
        join j{ex};
        j.spawn([&]() -> asio::awaitable<void> {
            auto pa = co_await a.accept();
            co_await pa.handshake();
            auto pb = co_await b.accept();
            co_await pb.handshake();
            auto quit = co_await pa.read_command();
            BOOST_TEST(quit.at("execute").as_string() == "quit");
            json::object reason{{"guest", false}, {"reason", "host-qmp-quit"}};
            auto shutdown = peer::event("SHUTDOWN", reason);
            std::string last;
            for (int i = 0; i < n; ++i)
                last += peer::event("TICK", json::object{{"n", i}, {"pad", std::string(300, 'x')}});
            last += shutdown + peer::reply(quit.at("id"));
            // All in one step: ~13 KiB for lane 0, then lane 1's copy and EOF.
            asio::write(pa.socket, asio::buffer(last));
            asio::write(pb.socket, asio::buffer(shutdown));
            pb.socket.close();
            pa.socket.close();
            co_return;
        });
        std::vector<std::string> paths{a.path, b.path};
        auto c = co_await qmp::client::connect_lanes(paths);
        auto events = c.subscribe();
        co_await c.quit();
        for (int i = 0; i < n; ++i) {
            auto e = co_await events.next(5s);
            BOOST_TEST(e.data.at("n").as_int64() == i);
        }
        BOOST_TEST((co_await events.next(5s)).name == "SHUTDOWN");
        co_await expect_error_co(errc::monitor_closed, events.next(5s));
        BOOST_TEST((c.end() == qmp::connection_end::clean));
        co_await j.wait();
    });
}

// QEMU says "completed" a moment before it leaves the finish-migrate run
// state, and `cont` fails in between ("Migration is not finalized yet": the
// integration test met it under load). migrate_to_fd returns only after
// the state moved on, so a `cont` right after it works.
BOOST_AUTO_TEST_CASE(migrate_to_fd_returns_once_qemu_left_finish_migrate) {
    run([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        server srv(ex);
        join j{ex};
        int status_queries = 0;
        std::string state = "paused";
        j.spawn([&]() -> asio::awaitable<void> {
            auto p = co_await srv.accept();
            co_await p.handshake();
            for (;;) {
                auto cmd = co_await p.read_command();
                const auto name = std::string(cmd.at("execute").as_string());
                json::value result = json::object{};
                if (name == "migrate") {
                    state = "finish-migrate";
                    // (No braced list inside a co_await expression: GCC 12.)
                    json::object done;
                    done["status"] = "completed";
                    auto bytes = peer::reply(cmd.at("id")) + peer::event("MIGRATION", std::move(done));
                    co_await p.send(std::move(bytes));
                    continue;
                }
                if (name == "query-migrate")
                    result = json::object{{"status", "completed"}};
                if (name == "query-status") {
                    // The third question finds the state moved on.
                    if (++status_queries == 3)
                        state = "postmigrate";
                    result = json::object{{"status", state}, {"running", false}};
                }
                if (name == "cont") {
                    if (state == "finish-migrate") {
                        co_await p.send(R"({"id": )" + json::serialize(cmd.at("id")) +
                                        R"(, "error": {"class": "GenericError", "desc": "Migration is not finalized yet"}})"
                                        "\r\n");
                        continue;
                    }
                    state = "running";
                }
                co_await p.send(peer::reply(cmd.at("id"), result));
            }
        });
        auto c = co_await qmp::client::connect(srv.path);
        int fd = ::dup(STDERR_FILENO); // handed over with getfd; never written by the peer
        BOOST_REQUIRE(fd >= 0);
        auto info = co_await qmp::migrate_to_fd(c, fd);
        ::close(fd);
        BOOST_TEST(info.status == "completed");
        BOOST_TEST(status_queries == 3);
        co_await c.cont();
        BOOST_TEST(state == "running");
        c.close();
        co_await j.wait_ignoring_eof();
    });
}
