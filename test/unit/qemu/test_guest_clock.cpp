// The guest clock after a snapshot restore: what QEMU's VSERPORT_CHANGE
// events say about the agent's port, and setting the clock through a
// scripted agent (success, the agent's error, silence). The whole step on
// real QEMU: test/e2e/qemu/test_snapshot.cpp (a guest without an agent)
// and the cloud suite's cloud_agent (with Debian's qemu-guest-agent).
#define BOOST_TEST_MODULE qemu_guest_clock
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include "../qga/fake_agent.hpp"
#include "guest_clock.hpp"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace asio = boost::asio;
namespace json = boost::json;
namespace qd = localvm::qemu::detail;
using localvm::qmp::event;
using localvm::testing::run_coroutine;
using namespace lvqga_test;
using namespace std::chrono_literals;

namespace {

event port_change(std::string_view text) {
    event e;
    e.name = "VSERPORT_CHANGE";
    e.data = json::parse(text).as_object();
    return e;
}

std::int64_t host_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

BOOST_AUTO_TEST_CASE(port_events_of_the_agent_port_only) {
    BOOST_TEST((qd::agent_port_open(port_change(R"({"id":"qga-port","open":true})")) ==
                std::optional<bool>(true)));
    BOOST_TEST((qd::agent_port_open(port_change(R"({"id":"qga-port","open":false})")) ==
                std::optional<bool>(false)));
    // Another port, a malformed event, another event.
    BOOST_TEST(!qd::agent_port_open(port_change(R"({"id":"other","open":true})")));
    BOOST_TEST(!qd::agent_port_open(port_change(R"({"id":"qga-port"})")));
    BOOST_TEST(!qd::agent_port_open(port_change(R"({"id":"qga-port","open":1})")));
    BOOST_TEST(!qd::agent_port_open(port_change(R"({"open":true})")));
    auto other = port_change(R"({"id":"qga-port","open":true})");
    other.name = "RESUME";
    BOOST_TEST(!qd::agent_port_open(other));
    BOOST_TEST(localvm::qemu::agent_port_device_id == "qga-port");
}

BOOST_AUTO_TEST_CASE(the_host_time_goes_to_guest_set_time_after_a_ping) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto p = make_pair(ex);
        spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
            auto& a = *keep;
            co_await a.answer_sync();
            co_await a.answer(); // guest-ping
            co_await a.answer(); // guest-set-time
        }(p.agent_ptr));
        const auto before = host_ns();
        auto r = co_await qd::set_clock_through_agent(p.client, 5000ms);
        const auto after = host_ns();
        BOOST_TEST(r.set);
        BOOST_TEST(r.detail == "set to the host's time through the guest agent");
        BOOST_TEST_REQUIRE(p.agent.log.size() == 3u);
        BOOST_TEST(p.agent.log[1] == "{\"execute\":\"guest-ping\",\"id\":2}\r\n");
        BOOST_TEST(p.agent.log[2].rfind("{\"execute\":\"guest-set-time\",\"arguments\":{\"time\":",
                                        0) == 0u,
                   p.agent.log[2]);
        auto req = json::parse(p.agent.log[2]).as_object();
        const auto sent = req.at("arguments").at("time").to_number<std::int64_t>();
        BOOST_TEST(sent >= before);
        BOOST_TEST(sent <= after);
    });
}

BOOST_AUTO_TEST_CASE(an_agent_error_or_silence_is_an_outcome_not_an_exception) {
    run_coroutine([]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        {
            auto p = make_pair(ex);
            spawn(ex, [](std::shared_ptr<fake_agent> keep) -> asio::awaitable<void> {
                auto& a = *keep;
                co_await a.answer_sync();
                co_await a.answer();
                auto req = co_await a.read();
                std::string text =
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"hwclock failed\"}, "
                    "\"id\": " +
                    json::serialize(req.at("id")) + "}\n";
                co_await a.send(std::move(text));
            }(p.agent_ptr));
            auto r = co_await qd::set_clock_through_agent(p.client, 5000ms);
            BOOST_TEST(!r.set);
            BOOST_TEST(r.detail.rfind("not set: the guest agent failed: ", 0) == 0u, r.detail);
            BOOST_TEST(r.detail.find("guest-set-time") != std::string::npos, r.detail);
            BOOST_TEST(r.detail.find("hwclock failed") != std::string::npos, r.detail);
        }
        {
            // An agent that never answers: the deadline, named.
            auto p = make_pair(ex);
            auto r = co_await qd::set_clock_through_agent(p.client, 200ms);
            BOOST_TEST(!r.set);
            BOOST_TEST(r.detail.rfind("not set: the guest agent failed: ", 0) == 0u, r.detail);
            BOOST_TEST(r.detail.find("guest-ping") != std::string::npos, r.detail);
        }
    });
}
