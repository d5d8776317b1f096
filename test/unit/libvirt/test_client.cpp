// The libvirt client against a scripted fake daemon on a unix socket, on
// the same io_context: serial correlation with replies out of order, error
// replies, events and streams demultiplexed, keepalive both ways, deadlines,
// a clean close told from an unexpected EOF, every waiter failed on EOF.
#define BOOST_TEST_MODULE libvirt_client
#include <localvm/error.hpp>
#include <localvm/libvirt/client.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "fake_daemon.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lv = localvm::libvirt;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using localvm::errc;

using libvirt_test::fake_daemon;
using libvirt_test::rp;

namespace {

lv::client_options quiet() {
    lv::client_options o;
    o.keepalive.interval = 0s; // the scripts do not expect PINGs
    o.connect_timeout = 10s;
    return o;
}

lv::domain_ref dom(const std::string& name) {
    lv::domain_ref d;
    d.name = name;
    d.uuid[0] = 0x42;
    d.id = 3;
    return d;
}

void run(std::function<asio::awaitable<void>()> body) {
    localvm::testing::run_coroutine(std::move(body), 30s);
}

} // namespace

BOOST_AUTO_TEST_CASE(calls_in_flight_get_their_own_replies_in_any_order) {
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        auto server = [&d]() -> asio::awaitable<void> {
            co_await d.handshake();
            std::vector<lv::message> calls;
            for (int i = 0; i < 8; ++i)
                calls.push_back(co_await d.expect(rp(lv::remote_procedure::domain_get_state)));
            // Answer in reverse order, all in one write.
            std::string out;
            for (auto it = calls.rbegin(); it != calls.rend(); ++it) {
                std::string problem;
                auto a = lv::decode<lv::domain_flags_args>(it->payload, problem);
                std::int32_t n = std::stoi(a->dom.name);
                lv::encode_message(out, fake_daemon::answer(*it),
                                   lv::encode(lv::domain_get_state_ret{n, n * 10}));
            }
            co_await d.send(out);
        };
        auto clientside = [&d]() -> asio::awaitable<void> {
            auto c = co_await lv::client::connect(d.uri(), quiet());
            auto ex = co_await asio::this_coro::executor;
            std::vector<std::pair<lv::domain_state, std::int32_t>> got(8);
            int done = 0;
            asio::steady_timer all(ex, std::chrono::steady_clock::time_point::max());
            for (int i = 0; i < 8; ++i)
                asio::co_spawn(
                    ex,
                    [&c, &got, &done, &all, i]() -> asio::awaitable<void> {
                        got[i] = co_await c.domain_get_state(dom(std::to_string(i)));
                        if (++done == 8)
                            all.cancel();
                    },
                    [](std::exception_ptr e) {
                        if (e)
                            std::rethrow_exception(e);
                    });
            boost::system::error_code ec;
            co_await all.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            for (int i = 0; i < 8; ++i) {
                BOOST_TEST(static_cast<int>(got[i].first) == i);
                BOOST_TEST(got[i].second == i * 10);
            }
            BOOST_TEST(c.in_flight() == 0u);
        };
        co_await (server() && clientside());
    });
}

BOOST_AUTO_TEST_CASE(an_error_reply_throws_call_error_with_libvirts_fields) {
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        auto server = [&d]() -> asio::awaitable<void> {
            co_await d.handshake();
            auto m = co_await d.expect(rp(lv::remote_procedure::domain_lookup_by_name));
            lv::remote_error e;
            e.code = 42;
            e.domain = 10;
            e.level = 2;
            e.message = "Domain not found: no domain with matching name 'x'";
            std::string out;
            lv::encode_message(
                out, fake_daemon::answer(m, lv::message_type::reply, lv::message_status::error),
                lv::encode_error(e));
            co_await d.send(out);
        };
        auto clientside = [&d]() -> asio::awaitable<void> {
            auto c = co_await lv::client::connect(d.uri(), quiet());
            try {
                co_await c.lookup_domain("x");
                BOOST_FAIL("lookup of a missing domain succeeded");
            } catch (const lv::call_error& e) {
                BOOST_TEST(e.code() == errc::libvirt_error);
                BOOST_TEST(e.libvirt_code() == 42);
                BOOST_TEST(e.libvirt_domain() == 10);
                BOOST_TEST(
                    e.diagnostic() ==
                    "DOMAIN_LOOKUP_BY_NAME: Domain not found: no domain with matching name 'x' "
                    "(libvirt error 42, domain 10)");
            }
            BOOST_TEST((c.end() == lv::connection_end::open));
        };
        co_await (server() && clientside());
    });
}

BOOST_AUTO_TEST_CASE(eof_fails_every_waiter_at_once_and_is_unexpected) {
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        auto server = [&d]() -> asio::awaitable<void> {
            co_await d.handshake();
            auto r = co_await d.expect(
                rp(lv::remote_procedure::connect_domain_event_callback_register_any));
            std::string answer_payload = lv::encode(lv::callback_id_value{7});
            co_await d.reply(r, std::move(answer_payload));
            auto c = co_await d.expect(rp(lv::remote_procedure::domain_open_console));
            co_await d.reply(c, "");
            for (int i = 0; i < 3; ++i)
                co_await d.expect(rp(lv::remote_procedure::connect_get_hostname));
            d.sock.close(); // the daemon dies with three calls, a reader and a stream waiting
        };
        auto clientside = [&d]() -> asio::awaitable<void> {
            auto c = co_await lv::client::connect(d.uri(), quiet());
            auto events = co_await c.subscribe_lifecycle();
            auto console = co_await c.open_console(dom("a"));
            auto ex = co_await asio::this_coro::executor;
            int failed = 0;
            asio::steady_timer all(ex, std::chrono::steady_clock::time_point::max());
            auto expect_closed = [&failed, &all](auto op) -> asio::awaitable<void> {
                try {
                    co_await op();
                    BOOST_FAIL("a waiter survived the daemon's EOF");
                } catch (const localvm::error& e) {
                    BOOST_TEST(e.code() == errc::libvirt_closed);
                    BOOST_TEST(e.diagnostic().find("ended (EOF)") != std::string::npos,
                               e.diagnostic());
                }
                if (++failed == 5)
                    all.cancel();
            };
            auto rethrow = [](std::exception_ptr e) {
                if (e)
                    std::rethrow_exception(e);
            };
            for (int i = 0; i < 3; ++i)
                asio::co_spawn(
                    ex, expect_closed([&c]() -> asio::awaitable<void> { co_await c.hostname(); }),
                    rethrow);
            asio::co_spawn(
                ex, expect_closed([&events]() -> asio::awaitable<void> { co_await events.next(); }),
                rethrow);
            asio::co_spawn(ex, expect_closed([&console]() -> asio::awaitable<void> {
                               co_await console.read();
                           }),
                           rethrow);
            boost::system::error_code ec;
            co_await all.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            BOOST_TEST(failed == 5);
            BOOST_TEST((c.end() == lv::connection_end::unexpected));
            BOOST_TEST((co_await c.wait_closed() == lv::connection_end::unexpected));
            try { // and later calls fail at once
                co_await c.hostname();
                BOOST_FAIL("a call after the end succeeded");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::libvirt_closed);
            }
        };
        co_await (server() && clientside());
    });
}

BOOST_AUTO_TEST_CASE(events_and_stream_data_reach_their_owners) {
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        auto server = [&d]() -> asio::awaitable<void> {
            co_await d.handshake();
            auto r = co_await d.expect(
                rp(lv::remote_procedure::connect_domain_event_callback_register_any));
            std::string problem;
            auto args = lv::decode<lv::event_register_any_args>(r.payload, problem);
            BOOST_TEST(args->event_id == 0);
            BOOST_TEST(!args->dom.has_value());
            // The reply and the first events in one write: none may be lost.
            std::string out;
            lv::encode_message(out, fake_daemon::answer(r), lv::encode(lv::callback_id_value{7}));
            lv::header ev;
            ev.procedure = rp(lv::remote_procedure::domain_event_callback_lifecycle);
            ev.type = lv::message_type::message;
            ev.serial = 1;
            lv::encode_message(out, ev,
                               lv::encode(lv::lifecycle_msg{9, dom("other"), 2, 0})); // not ours
            lv::encode_message(out, ev, lv::encode(lv::lifecycle_msg{7, dom("a"), 0, 0}));
            lv::encode_message(out, ev, lv::encode(lv::lifecycle_msg{7, dom("a"), 2, 0}));
            co_await d.send(out);
            auto c = co_await d.expect(rp(lv::remote_procedure::domain_open_console));
            out.clear();
            lv::encode_message(out, fake_daemon::answer(c), "");
            auto data =
                fake_daemon::answer(c, lv::message_type::stream, lv::message_status::proceed);
            lv::encode_message(out, data, "hello");
            lv::encode_message(out, data, " world");
            co_await d.send(out);
            auto in = co_await d.next();
            BOOST_TEST((in.header == data));
            BOOST_TEST(in.payload == "input");
            out.clear();
            lv::encode_message(
                out, fake_daemon::answer(c, lv::message_type::stream, lv::message_status::ok), "");
            co_await d.send(out);
            auto later = co_await d.expect(
                rp(lv::remote_procedure::connect_domain_event_callback_deregister_any));
            BOOST_TEST(lv::decode<lv::callback_id_value>(later.payload, problem)->callback_id == 7);
            co_await d.reply(later, "");
        };
        auto clientside = [&d]() -> asio::awaitable<void> {
            auto c = co_await lv::client::connect(d.uri(), quiet());
            auto events = co_await c.subscribe_lifecycle();
            BOOST_TEST(events.callback_id() == 7);
            auto e1 = co_await events.next(5s);
            BOOST_TEST(e1.dom.name == "a");
            BOOST_TEST((e1.event == lv::lifecycle_event::defined));
            auto e2 = co_await events.next(5s);
            BOOST_TEST((e2.event == lv::lifecycle_event::started));
            BOOST_TEST(!events.try_next().has_value());
            auto console = co_await c.open_console(dom("a"));
            BOOST_TEST((co_await console.read(5s)).value_or("<end>") == "hello");
            BOOST_TEST((co_await console.read(5s)).value_or("<end>") == " world");
            co_await console.write("input");
            BOOST_TEST(!(co_await console.read(5s)).has_value()); // the daemon's OK: the end
            co_await events.close();
        };
        co_await (server() && clientside());
    });
}

BOOST_AUTO_TEST_CASE(an_upload_goes_in_chunks_and_finish_reports_the_daemons_verdict) {
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        const std::string data(600 * 1024, 'x');
        auto server = [&d, &data]() -> asio::awaitable<void> {
            co_await d.handshake();
            for (int round = 0; round < 2; ++round) {
                auto u = co_await d.expect(rp(lv::remote_procedure::storage_vol_upload));
                std::string problem;
                auto args = lv::decode<lv::vol_upload_args>(u.payload, problem);
                BOOST_TEST(args->length == data.size());
                co_await d.reply(u, "");
                std::string got;
                std::vector<std::size_t> sizes;
                for (;;) {
                    auto p = co_await d.next();
                    BOOST_TEST((p.header.type == lv::message_type::stream));
                    BOOST_TEST(p.header.serial == u.header.serial);
                    if (p.header.status == lv::message_status::ok)
                        break;
                    sizes.push_back(p.payload.size());
                    got += p.payload;
                }
                BOOST_TEST(got == data);
                BOOST_TEST((sizes == std::vector<std::size_t>{256 * 1024, 256 * 1024, 88 * 1024}));
                std::string out;
                if (round == 0) {
                    lv::encode_message(
                        out,
                        fake_daemon::answer(u, lv::message_type::stream, lv::message_status::ok),
                        "");
                } else {
                    lv::remote_error e;
                    e.code = 38;
                    e.domain = 18;
                    e.message = "cannot write: No space left on device";
                    lv::encode_message(
                        out,
                        fake_daemon::answer(u, lv::message_type::stream, lv::message_status::error),
                        lv::encode_error(e));
                }
                co_await d.send(out);
            }
        };
        auto clientside = [&d, &data]() -> asio::awaitable<void> {
            auto c = co_await lv::client::connect(d.uri(), quiet());
            lv::vol_ref v{"pool", "v1", "/p/v1"};
            co_await c.upload(v, data);
            try {
                co_await c.upload(v, data);
                BOOST_FAIL("an upload the daemon failed succeeded");
            } catch (const lv::call_error& e) {
                BOOST_TEST(e.libvirt_code() == 38);
                BOOST_TEST(e.procedure() == "STORAGE_VOL_UPLOAD stream");
            }
        };
        co_await (server() && clientside());
    });
}

BOOST_AUTO_TEST_CASE(a_call_deadline_passes_and_the_connection_goes_on) {
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        auto server = [&d]() -> asio::awaitable<void> {
            co_await d.handshake();
            auto slow = co_await d.expect(rp(lv::remote_procedure::domain_get_state));
            auto next = co_await d.expect(rp(lv::remote_procedure::connect_get_hostname));
            std::string late = lv::encode(lv::domain_get_state_ret{1, 1});
            co_await d.reply(slow, late); // after the deadline: dropped
            std::string host = lv::encode(lv::string_value{"h"});
            co_await d.reply(next, host);
        };
        auto clientside = [&d]() -> asio::awaitable<void> {
            auto c = co_await lv::client::connect(d.uri(), quiet());
            lv::call_options o;
            o.timeout = 100ms;
            try {
                co_await c.domain_get_state(dom("a"), o);
                BOOST_FAIL("a call with no reply returned");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
                BOOST_TEST(e.diagnostic() ==
                           "libvirt call DOMAIN_GET_STATE (212): no reply within 100 ms");
            }
            BOOST_TEST(co_await c.hostname() == "h");
        };
        co_await (server() && clientside());
    });
}

BOOST_AUTO_TEST_CASE(keepalive_pings_are_answered_sent_on_silence_and_a_dead_peer_ends_it) {
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        lv::header ping;
        ping.program = lv::keepalive_program;
        ping.procedure = lv::keepalive_ping;
        ping.type = lv::message_type::message;
        auto server = [&d, &ping]() -> asio::awaitable<void> {
            co_await d.handshake();
            std::string out;
            lv::encode_message(out, ping, "");
            co_await d.send(out);
            auto pong = co_await d.next();
            BOOST_TEST(pong.header.program == lv::keepalive_program);
            BOOST_TEST(pong.header.procedure == lv::keepalive_pong);
            // Now silence: the client PINGs (twice), then gives up.
            auto p1 = co_await d.next();
            BOOST_TEST(p1.header.procedure == lv::keepalive_ping);
            auto call = co_await d.expect(rp(lv::remote_procedure::connect_get_hostname));
            (void)call;
            auto p2 = co_await d.next();
            BOOST_TEST(p2.header.procedure == lv::keepalive_ping);
        };
        auto clientside = [&d]() -> asio::awaitable<void> {
            auto o = quiet();
            o.keepalive.interval = 300ms;
            o.keepalive.count = 2;
            auto c = co_await lv::client::connect(d.uri(), o);
            asio::steady_timer t(co_await asio::this_coro::executor, 400ms);
            co_await t.async_wait(asio::use_awaitable); // after the first PING
            try {
                co_await c.hostname(); // never answered: the keepalive ends it
                BOOST_FAIL("a call to a silent daemon returned");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::timeout);
                BOOST_TEST(e.diagnostic().find("no answer to 2 keepalive PINGs") !=
                               std::string::npos,
                           e.diagnostic());
            }
            BOOST_TEST((c.end() == lv::connection_end::keepalive));
        };
        co_await (server() && clientside());
    });
}

// virt-ssh-helper drops the daemon's last reply when the daemon closes
// right after it: an EOF in place of CONNECT_CLOSE's reply is still clean.
BOOST_AUTO_TEST_CASE(close_answered_by_eof_alone_is_clean) {
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        auto server = [&d]() -> asio::awaitable<void> {
            co_await d.handshake();
            co_await d.expect(rp(lv::remote_procedure::connect_close));
            d.sock.close();
        };
        auto clientside = [&d]() -> asio::awaitable<void> {
            auto c = co_await lv::client::connect(d.uri(), quiet());
            co_await c.close();
            BOOST_TEST((c.end() == lv::connection_end::clean));
        };
        co_await (server() && clientside());
    });
}

BOOST_AUTO_TEST_CASE(close_is_clean_and_an_auth_other_than_none_is_refused) {
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        auto server = [&d]() -> asio::awaitable<void> {
            co_await d.handshake();
            auto m = co_await d.expect(rp(lv::remote_procedure::connect_close));
            co_await d.reply(m, "");
            d.sock.close();
        };
        auto clientside = [&d]() -> asio::awaitable<void> {
            auto c = co_await lv::client::connect(d.uri(), quiet());
            co_await c.close();
            BOOST_TEST((c.end() == lv::connection_end::clean));
        };
        co_await (server() && clientside());
    });
    run([]() -> asio::awaitable<void> {
        fake_daemon d(co_await asio::this_coro::executor);
        auto server = [&d]() -> asio::awaitable<void> {
            co_await d.handshake(2);
        };
        auto clientside = [&d]() -> asio::awaitable<void> {
            try {
                co_await lv::client::connect(d.uri(), quiet());
                BOOST_FAIL("connected to a daemon demanding polkit");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::unsupported);
                BOOST_TEST(
                    e.diagnostic().find(
                        "demands authentication (polkit); localvm supports only auth none") !=
                        std::string::npos,
                    e.diagnostic());
            }
        };
        co_await (server() && clientside());
    });
}

BOOST_AUTO_TEST_CASE(connect_names_a_missing_socket_and_a_bad_uri) {
    run([]() -> asio::awaitable<void> {
        try {
            co_await lv::client::connect("qemu+unix:///system?socket=/nonexistent/libvirt-sock",
                                         quiet());
            BOOST_FAIL("connected to nothing");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::not_found);
            BOOST_TEST(e.diagnostic().find("/nonexistent/libvirt-sock") != std::string::npos);
        }
        try {
            co_await lv::client::connect("qemu+tls://h/system", quiet());
            BOOST_FAIL("accepted a tls URI");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
        }
        try {
            co_await lv::client::connect("qemu+ssh://127.0.0.1/system", quiet());
            BOOST_FAIL("accepted an ssh URI without a key");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
            BOOST_TEST(e.diagnostic().find("keyfile=PATH") != std::string::npos, e.diagnostic());
        }
    });
}
