// A scripted guest agent for unit tests: the agent's end of a socketpair
// (or of an accepted unix socket connection), answering as qemu-ga does.
// Shared by test/unit/qga and test/unit/qemu.
#pragma once

#include <localvm/error.hpp>
#include <localvm/qga/client.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace lvqga_test {

namespace asio = boost::asio;
namespace json = boost::json;
namespace qga = localvm::qga;
using stream = asio::local::stream_protocol;

// What qemu-ga answers to the 0xFF byte before a sync request.
inline const std::string parse_error =
    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n";

// (GCC 12 miscompiles string literals inside co_await expressions: "array
// used as initializer". Strings are built in locals first.)

// The agent's end of the channel, scripted by each test.
struct fake_agent {
    stream::socket socket;
    std::string buf;
    std::vector<std::string> log; // every request line as read, marker shown as "<FF>"

    // The next request; `marked` says whether a 0xFF preceded it.
    asio::awaitable<json::object> read(bool* marked = nullptr) {
        auto n = co_await asio::async_read_until(socket, asio::dynamic_buffer(buf), '\n',
                                                 asio::use_awaitable);
        auto line = buf.substr(0, n);
        buf.erase(0, n);
        bool m = !line.empty() && line.front() == '\xff';
        if (m)
            line.erase(0, 1);
        if (marked)
            *marked = m;
        log.push_back((m ? "<FF>" : "") + line);
        co_return json::parse(line).as_object();
    }
    asio::awaitable<void> send(std::string text) {
        co_await asio::async_write(socket, asio::buffer(text), asio::use_awaitable);
    }
    // Answers a sync as qemu-ga does: the parse error its marker causes,
    // then the marker and the token. Returns the token.
    asio::awaitable<std::uint64_t> answer_sync(std::string stale = {}) {
        bool marked = false;
        auto req = co_await read(&marked);
        BOOST_TEST(marked);
        BOOST_TEST(req.at("execute").as_string() == "guest-sync-delimited");
        auto token = req.at("arguments").at("id").to_number<std::uint64_t>();
        std::string text = stale + parse_error + "\xff" +
                           json::serialize(json::object{{"return", token}, {"id", req.at("id")}}) +
                           "\n";
        co_await send(std::move(text));
        co_return token;
    }
    asio::awaitable<json::object> answer(json::value result = json::object{}) {
        auto req = co_await read();
        std::string text =
            json::serialize(json::object{{"return", result}, {"id", req.at("id")}}) + "\n";
        co_await send(std::move(text));
        co_return req;
    }
};

// The agent is shared with its scripted coroutine, which may outlive the
// test body (it ends when its reads fail).
struct pair {
    std::shared_ptr<fake_agent> agent_ptr;
    qga::client client;
    fake_agent& agent;
};

inline pair make_pair(asio::any_io_executor ex, qga::client_options o = {}) {
    stream::socket a(ex), b(ex);
    asio::local::connect_pair(a, b);
    auto agent = std::make_shared<fake_agent>(fake_agent{std::move(b), {}, {}});
    auto& ref = *agent;
    return pair{std::move(agent), qga::client::adopt(std::move(a), "fake", o), ref};
}

// Runs `op` and returns the localvm::error it throws (fails if none).
template <class T> asio::awaitable<localvm::error> thrown(asio::awaitable<T> op) {
    try {
        co_await std::move(op);
    } catch (const localvm::error& e) {
        co_return e;
    }
    BOOST_FAIL("no error thrown");
    throw std::logic_error("unreachable");
}

inline void spawn(asio::any_io_executor ex, asio::awaitable<void> op) {
    asio::co_spawn(ex, std::move(op), [](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                BOOST_TEST_MESSAGE("fake agent ended: " << x.what());
            }
        }
    });
}

} // namespace lvqga_test
