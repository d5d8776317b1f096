#define BOOST_TEST_MODULE qga_protocol
#include <localvm/error.hpp>
#include <localvm/qga/protocol.hpp>

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

namespace qga = localvm::qga;
namespace qmp = localvm::qmp;
namespace json = boost::json;
using localvm::errc;

namespace {

std::string describe(const qga::outcome& o) {
    if (std::holds_alternative<qga::synced>(o))
        return "synced";
    if (auto* s = std::get_if<qmp::success>(&o))
        return "success id=" + json::serialize(s->id) + " " + json::serialize(s->result);
    auto& f = std::get<qmp::failure>(o);
    return "failure id=" + json::serialize(f.id) + " " + f.error_class + ": " + f.desc;
}

// Feeds `input` split into pieces at the given offsets and records every
// outcome and error, and the state at the end.
std::vector<std::string> feed(qga::session& s, std::string_view input,
                              std::vector<std::size_t> cuts = {}) {
    std::vector<std::string> out;
    std::size_t from = 0;
    cuts.push_back(input.size());
    for (auto cut : cuts) {
        auto piece = input.substr(from, cut - from);
        from = cut;
        while (!piece.empty()) {
            boost::system::error_code ec;
            auto o = s.consume(piece, ec);
            if (ec)
                out.push_back("error " + ec.message());
            if (o)
                out.push_back(describe(*o));
        }
    }
    return out;
}

// A session synced with token 77; its sync request had id 1.
qga::session synced_session() {
    qga::session s;
    std::string out;
    s.begin_sync(out, 77);
    feed(s, "\xff{\"return\": 77, \"id\": 1}\n");
    BOOST_TEST_REQUIRE(static_cast<int>(s.state()) == static_cast<int>(qga::session_state::ready));
    return s;
}

const std::string stale_then_sync =
    // a previous client's reply, an error for half a request cut by our
    // marker, an older sync reply, then ours
    "{\"return\": {}, \"id\": 9}\n"
    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n"
    "\xff{\"return\": 76}\n"
    "\xff{\"return\": 77, \"id\": 1}\n";

} // namespace

BOOST_AUTO_TEST_CASE(sync_request_bytes) {
    qga::session s;
    BOOST_TEST(static_cast<int>(s.state()) == static_cast<int>(qga::session_state::unsynced));
    std::string out;
    s.begin_sync(out, 12345);
    BOOST_TEST(out == "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":12345},"
                      "\"id\":1}\r\n");
    BOOST_TEST(static_cast<int>(s.state()) == static_cast<int>(qga::session_state::syncing));
}

BOOST_AUTO_TEST_CASE(sync_discards_stale_input_at_every_split) {
    for (std::size_t a = 0; a <= stale_then_sync.size(); ++a) {
        for (std::size_t b = a; b <= stale_then_sync.size(); b += 7) {
            qga::session s;
            std::string out;
            s.begin_sync(out, 77);
            auto got = feed(s, stale_then_sync, {a, b});
            BOOST_TEST_REQUIRE(got == std::vector<std::string>{"synced"}, "cuts " << a << "," << b);
            BOOST_TEST(static_cast<int>(s.state()) == static_cast<int>(qga::session_state::ready));
        }
    }
}

BOOST_AUTO_TEST_CASE(a_marker_inside_the_line_starts_it_over) {
    // An older sync reply cut off by the marker of ours.
    qga::session s;
    std::string out;
    s.begin_sync(out, 77);
    BOOST_TEST(feed(s, "\xff{\"retu\xff{\"return\": 77}\n") == std::vector<std::string>{"synced"});
}

BOOST_AUTO_TEST_CASE(sync_ignores_other_tokens_and_bad_lines) {
    qga::session s;
    std::string out;
    s.begin_sync(out, 77);
    BOOST_TEST(feed(s, "\xff{\"return\": 78}\n\xffnot json\n\xff{\"error\":{}}\n\xff\n").empty());
    BOOST_TEST(static_cast<int>(s.state()) == static_cast<int>(qga::session_state::syncing));
    // Text between marker lines without a marker is stale too.
    BOOST_TEST(feed(s, "{\"return\": 77}\n").empty());
    BOOST_TEST(feed(s, "\xff{\"return\": 77}\n") == std::vector<std::string>{"synced"});
}

BOOST_AUTO_TEST_CASE(sync_line_longer_than_the_limit_is_skipped) {
    qga::session s(20);
    std::string out;
    s.begin_sync(out, 77);
    BOOST_TEST(feed(s, "\xff{\"return\": 77, \"pad\": \"xxxxxxxxxxxxxxxx\"}\n", {3, 9}).empty());
    BOOST_TEST(feed(s, "\xff{\"return\": 77}\n") == std::vector<std::string>{"synced"});
}

BOOST_AUTO_TEST_CASE(call_request_bytes_and_reply) {
    auto s = synced_session();
    std::string out;
    boost::system::error_code ec;
    json::object args;
    args["pid"] = 42;
    auto id = s.begin_call(out, "guest-exec-status", args, true, ec);
    BOOST_TEST(!ec);
    BOOST_TEST(id == 2u);
    BOOST_TEST(s.call_id() == 2u);
    BOOST_TEST(out ==
               "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":42},\"id\":2}\r\n");
    const std::string reply = "{\"return\": {\"exited\": false}, \"id\": 2}\n";
    for (std::size_t cut = 0; cut <= reply.size(); ++cut) {
        auto t = synced_session();
        std::string o;
        t.begin_call(o, "guest-exec-status", args, true, ec);
        BOOST_TEST(feed(t, reply, {cut}) ==
                   std::vector<std::string>{"success id=2 {\"exited\":false}"});
        BOOST_TEST(static_cast<int>(t.state()) == static_cast<int>(qga::session_state::ready));
    }
}

BOOST_AUTO_TEST_CASE(call_without_arguments) {
    auto s = synced_session();
    std::string out;
    boost::system::error_code ec;
    s.begin_call(out, "guest-ping", {}, true, ec);
    BOOST_TEST(out == "{\"execute\":\"guest-ping\",\"id\":2}\r\n");
}

BOOST_AUTO_TEST_CASE(call_needs_a_synced_idle_session) {
    qga::session s;
    std::string out;
    boost::system::error_code ec;
    BOOST_TEST(s.begin_call(out, "guest-ping", {}, true, ec) == 0u);
    BOOST_TEST(ec == errc::invalid_argument);
    BOOST_TEST(out.empty());
    s.begin_sync(out, 1);
    out.clear();
    BOOST_TEST(s.begin_call(out, "guest-ping", {}, true, ec) == 0u);
    BOOST_TEST(ec == errc::invalid_argument);
    auto t = synced_session();
    t.begin_call(out, "guest-ping", {}, true, ec);
    BOOST_TEST(!ec);
    out.clear();
    BOOST_TEST(t.begin_call(out, "guest-ping", {}, true, ec) == 0u);
    BOOST_TEST(ec == errc::invalid_argument);
}

BOOST_AUTO_TEST_CASE(error_reply_with_and_without_id) {
    boost::system::error_code ec;
    std::string out;
    auto s = synced_session();
    s.begin_call(out, "guest-file-open", {}, true, ec);
    BOOST_TEST(
        feed(s, "{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\n") ==
        std::vector<std::string>{"failure id=2 GenericError: no"});
    // The agent could not read the request: no id, still the call's.
    auto t = synced_session();
    t.begin_call(out, "guest-ping", {}, true, ec);
    BOOST_TEST(
        feed(t, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n") ==
        std::vector<std::string>{"failure id=null GenericError: JSON parse error"});
}

BOOST_AUTO_TEST_CASE(late_replies_of_earlier_calls_are_ignored) {
    boost::system::error_code ec;
    std::string out;
    auto s = synced_session();
    s.begin_call(out, "guest-ping", {}, true, ec); // id 2
    feed(s, "{\"return\": {}, \"id\": 2}\n");
    s.begin_call(out, "guest-ping", {}, true, ec); // id 3
    BOOST_TEST(
        feed(s, "{\"return\": {}, \"id\": 1}\n{\"event\": \"X\"}\n{\"return\": 5, \"id\": 3}\n") ==
        std::vector<std::string>{"success id=3 5"});
}

BOOST_AUTO_TEST_CASE(unexpected_replies_break_the_session) {
    for (std::string bad : {"{\"return\": {}, \"id\": 9}\n", "{\"return\": {}}\n", "[1]\n",
                            "{\"return\": {}, \"id\": \"x\"}\n"}) {
        boost::system::error_code ec;
        std::string out;
        auto s = synced_session();
        s.begin_call(out, "guest-ping", {}, true, ec);
        BOOST_TEST(feed(s, bad) ==
                       std::vector<std::string>{"error " +
                                                make_error_code(errc::protocol_error).message()},
                   bad);
        BOOST_TEST(static_cast<int>(s.state()) == static_cast<int>(qga::session_state::unsynced));
    }
}

BOOST_AUTO_TEST_CASE(reply_longer_than_the_limit) {
    qga::session s(40);
    std::string out;
    s.begin_sync(out, 77);
    feed(s, "\xff{\"return\": 77}\n");
    boost::system::error_code ec;
    s.begin_call(out, "guest-ping", {}, true, ec);
    auto got = feed(s, "{\"return\": \"" + std::string(100, 'a') + "\", \"id\": 2}\n");
    BOOST_TEST_REQUIRE(!got.empty());
    BOOST_TEST(got.front() == "error " + make_error_code(errc::message_too_large).message());
    BOOST_TEST(static_cast<int>(s.state()) == static_cast<int>(qga::session_state::unsynced));
}

BOOST_AUTO_TEST_CASE(silent_command_is_followed_by_a_ping) {
    boost::system::error_code ec;
    std::string out;
    auto s = synced_session();
    json::object args;
    args["mode"] = "powerdown";
    BOOST_TEST(s.begin_call(out, "guest-shutdown", args, false, ec) == 2u);
    BOOST_TEST(
        out ==
        "{\"execute\":\"guest-shutdown\",\"arguments\":{\"mode\":\"powerdown\"},\"id\":2}\r\n"
        "{\"execute\":\"guest-ping\",\"id\":3}\r\n");
    // Accepted: only the ping answers.
    BOOST_TEST(feed(s, "{\"return\": {}, \"id\": 3}\n") ==
               std::vector<std::string>{"success id=2 null"});
    // Refused: the command's error.
    auto t = synced_session();
    t.begin_call(out, "guest-shutdown", args, false, ec);
    BOOST_TEST(feed(t,
                    "{\"id\": 2, \"error\": {\"class\": \"CommandDisabled\", \"desc\": \"off\"}}\n"
                    "{\"return\": {}, \"id\": 3}\n") ==
               std::vector<std::string>{"failure id=2 CommandDisabled: off"});
    // Answered after all: accepted, and the ping's reply is dropped later.
    auto u = synced_session();
    u.begin_call(out, "guest-shutdown", args, false, ec);
    BOOST_TEST(feed(u, "{\"return\": {}, \"id\": 2}\n{\"return\": {}, \"id\": 3}\n") ==
               std::vector<std::string>{"success id=2 null"});
    out.clear();
    u.begin_call(out, "guest-ping", {}, true, ec); // id 4
    BOOST_TEST(feed(u, "{\"return\": {}, \"id\": 4}\n") ==
               std::vector<std::string>{"success id=4 {}"});
}

BOOST_AUTO_TEST_CASE(abandon_then_resync) {
    boost::system::error_code ec;
    std::string out;
    auto s = synced_session();
    s.begin_call(out, "guest-exec", {}, true, ec); // id 2, times out
    s.abandon();
    BOOST_TEST(static_cast<int>(s.state()) == static_cast<int>(qga::session_state::unsynced));
    // Its late reply arrives while nobody waits: discarded.
    BOOST_TEST(feed(s, "{\"return\": {\"pid\": 1}, \"id\": 2}\n").empty());
    out.clear();
    s.begin_sync(out, 78);
    BOOST_TEST(out ==
               "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":78},\"id\":3}\r\n");
    BOOST_TEST(feed(s, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                       "\"stray\"}}\n\xff{\"return\": 78, \"id\": 3}\n") ==
               std::vector<std::string>{"synced"});
}

BOOST_AUTO_TEST_CASE(a_partial_reply_is_dropped_by_a_resync) {
    boost::system::error_code ec;
    std::string out;
    auto s = synced_session();
    s.begin_call(out, "guest-ping", {}, true, ec);
    BOOST_TEST(feed(s, "{\"return\": {}, \"i").empty());
    s.abandon();
    s.begin_sync(out, 79);
    // The rest of the old reply, then ours: the old half never joins a line.
    BOOST_TEST(feed(s, "d\": 2}\n\xff{\"return\": 79}\n") == std::vector<std::string>{"synced"});
    out.clear();
    s.begin_call(out, "guest-ping", {}, true, ec);
    BOOST_TEST(feed(s, "{\"return\": {}, \"id\": 4}\n") ==
               std::vector<std::string>{"success id=4 {}"});
}

BOOST_AUTO_TEST_CASE(the_tail_of_an_oversized_reply_is_no_sync_reply) {
    // A marker and a matching sync reply inside an oversized line (garbage,
    // but a peer may send it): however the line is split, it never syncs.
    const std::string line = "{\"return\": \"" + std::string(60, 'a') + "\xff{\"return\": 78}\n";
    for (std::size_t cut = 1; cut < line.size(); ++cut) {
        qga::session s(40);
        std::string out;
        s.begin_sync(out, 77);
        feed(s, "\xff{\"return\": 77}\n");
        boost::system::error_code ec;
        s.begin_call(out, "guest-ping", {}, true, ec);
        std::vector<std::string> got;
        std::string_view head(line.data(), cut), tail(line.data() + cut, line.size() - cut);
        while (!head.empty()) {
            s.consume(head, ec);
            if (ec) {
                got.push_back("error");
                s.begin_sync(out, 78);
            }
        }
        while (!tail.empty()) {
            auto o = s.consume(tail, ec);
            if (ec) {
                got.push_back("error");
                s.begin_sync(out, 78);
            }
            if (o)
                got.push_back(describe(*o));
        }
        BOOST_TEST(got == std::vector<std::string>{"error"}, "cut " << cut);
        if (s.state() != qga::session_state::syncing)
            s.begin_sync(out, 78);
        BOOST_TEST(feed(s, "\xff{\"return\": 78}\n") == std::vector<std::string>{"synced"});
    }
}
