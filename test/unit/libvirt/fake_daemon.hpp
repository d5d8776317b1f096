// A scripted libvirt daemon for the client's unit tests: listens on a unix
// socket in a temp dir, accepts one client, reads its messages whole and
// answers what the test says (test_client.cpp, test_client_replay.cpp).
#pragma once

#include <localvm/libvirt/procedures.hpp>
#include <localvm/libvirt/protocol.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <string>

#include <stdlib.h>

namespace libvirt_test {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lv = localvm::libvirt;

inline std::int32_t rp(lv::remote_procedure p) {
    return static_cast<std::int32_t>(p);
}

// A scripted daemon: accepts one client, reads its messages, answers.
struct fake_daemon {
    explicit fake_daemon(asio::any_io_executor ex)
        : acceptor(ex)
        , sock(ex) {
        char tmpl[] = "/tmp/localvm-libvirt-fake.XXXXXX";
        BOOST_TEST_REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        path = (dir / "sock").string();
        acceptor.open(asio::local::stream_protocol());
        acceptor.bind(asio::local::stream_protocol::endpoint(path));
        acceptor.listen();
    }
    ~fake_daemon() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }

    std::string uri() const { return "qemu+unix:///system?socket=" + path; }

    asio::awaitable<void> accept() { co_await acceptor.async_accept(sock, asio::use_awaitable); }

    asio::awaitable<lv::message> next() {
        for (;;) {
            std::string_view in(buf);
            boost::system::error_code ec;
            auto m = dec.consume(in, ec);
            BOOST_TEST_REQUIRE(!ec, dec.problem());
            buf.erase(0, buf.size() - in.size());
            if (m)
                co_return std::move(*m);
            char b[4096];
            auto n = co_await sock.async_read_some(asio::buffer(b), asio::use_awaitable);
            buf.append(b, n);
        }
    }

    asio::awaitable<lv::message> expect(std::int32_t proc,
                                        std::uint32_t program = lv::remote_program) {
        auto m = co_await next();
        BOOST_TEST(m.header.program == program);
        BOOST_TEST(m.header.procedure == proc);
        co_return m;
    }

    static lv::header answer(const lv::message& call, lv::message_type t = lv::message_type::reply,
                             lv::message_status s = lv::message_status::ok) {
        auto h = call.header;
        h.type = t;
        h.status = s;
        return h;
    }

    asio::awaitable<void> send(std::string bytes) {
        co_await asio::async_write(sock, asio::buffer(bytes), asio::use_awaitable);
    }
    asio::awaitable<void> reply(const lv::message& call, const std::string& payload) {
        std::string out;
        lv::encode_message(out, answer(call), payload);
        co_await send(out);
    }
    // Offers the one auth type `auth` (0 none, 2 polkit); with none, takes CONNECT_OPEN too.
    asio::awaitable<void> handshake(std::int32_t auth = 0) {
        co_await accept();
        auto a = co_await expect(rp(lv::remote_procedure::auth_list));
        lv::auth_list_ret offered;
        offered.types.push_back(auth);
        co_await reply(a, lv::encode(offered));
        if (auth != 0)
            co_return;
        auto o = co_await expect(rp(lv::remote_procedure::connect_open));
        std::string problem;
        auto args = lv::decode<lv::connect_open_args>(o.payload, problem);
        BOOST_TEST(args->name.value_or("") == "qemu:///system");
        co_await reply(o, "");
    }

    fs::path dir;
    std::string path;
    asio::local::stream_protocol::acceptor acceptor;
    asio::local::stream_protocol::socket sock;
    lv::frame_decoder dec;
    std::string buf;
};

} // namespace libvirt_test
