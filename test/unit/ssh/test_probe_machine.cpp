// The readiness probe's state machine, driven by scripted events and a
// scripted clock: no sockets, no waiting. Actions are written as short words
// ("connect 1", "read 1", "close 2", "wait 250" = until 250 ms after the
// script's epoch) so each step of a scenario reads as a line.
#define BOOST_TEST_MODULE ssh_probe_machine
#include "probe_machine.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

using namespace std::chrono_literals;
using localvm::errc;
using localvm::ssh::probe_options;
using namespace localvm::ssh::detail;

namespace {

using ms = std::chrono::milliseconds;
using kind = probe_action_kind;
using ev = probe_event_kind;

// A machine plus a fake clock that scripts advance explicitly.
struct script {
    probe_machine m;
    const probe_clock::time_point epoch{}; // any fixed point works
    probe_clock::time_point now = epoch;
    probe_action last;

    explicit script(probe_options o = overlapping()) : m("127.0.0.1:2222", o) {}

    // The cases below exercise overlapping attempts: a fresh connection every
    // 250 ms, up to 12 open (the library's default is one at a time).
    static probe_options overlapping() {
        probe_options o;
        o.attempt_interval = std::chrono::milliseconds(250);
        o.max_open_attempts = 12;
        return o;
    }

    std::string word(const probe_action& a) const {
        switch (a.kind) {
        case kind::connect: return "connect " + std::to_string(a.id);
        case kind::read: return "read " + std::to_string(a.id);
        case kind::close: return "close " + std::to_string(a.id);
        case kind::wait:
            return "wait " +
                   std::to_string(std::chrono::duration_cast<ms>(a.until - epoch).count());
        case kind::done: return "done";
        case kind::fail: return "fail";
        }
        return "?";
    }
    // Feeds one event; returns the action's word.
    std::string feed(ev e, std::uint32_t id = 0, std::string_view data = {},
                     std::string_view text = {}) {
        last = m.resume({e, id, data, text}, now);
        return word(last);
    }
    // Feeds one event, then answers every connect/read/close with `issued`;
    // returns the words of all actions up to a wait, done or fail.
    std::vector<std::string> step(ev e, std::uint32_t id = 0, std::string_view data = {},
                                  std::string_view text = {}) {
        std::vector<std::string> words{feed(e, id, data, text)};
        while (last.kind == kind::connect || last.kind == kind::read || last.kind == kind::close)
            words.push_back(feed(ev::issued));
        return words;
    }
    std::vector<std::string> start() { return step(ev::start); }
    // Moves the clock to the last wait's `until` and ticks.
    std::vector<std::string> tick() {
        now = last.until;
        return step(ev::tick);
    }
    void at(ms t) { now = epoch + t; }
};

using words = std::vector<std::string>;

const std::string banner = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";

// An options set with one connection at a time (the overlap out of the way).
probe_options one_at_a_time() {
    probe_options o = script::overlapping();
    o.attempt_interval = 100s;
    return o;
}

} // namespace

BOOST_AUTO_TEST_CASE(banner_on_first_connection) {
    script s;
    // A fresh connection is due after attempt_interval (250 ms here).
    BOOST_TEST(s.start() == (words{"connect 1", "wait 250"}), boost::test_tools::per_element());
    s.at(3ms);
    BOOST_TEST(s.step(ev::connected, 1) == (words{"read 1", "wait 250"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.step(ev::data, 1, banner + "\r\n") == (words{"done"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.banner() == banner);
    BOOST_TEST(s.m.attempts() == 1);
    BOOST_TEST(s.m.open() == 0u);
    // A finished machine keeps answering done.
    BOOST_TEST(s.feed(ev::tick) == "done");
}

BOOST_AUTO_TEST_CASE(silent_connections_overlap_and_the_first_banner_wins) {
    script s; // a fresh connection every 250 ms, up to 12 open
    s.start();
    s.at(1ms);
    BOOST_TEST(s.step(ev::connected, 1) == (words{"read 1", "wait 250"}),
               boost::test_tools::per_element());
    // Connection 1 stays silent (slirp retransmits its SYN to the guest
    // later and later): a fresh one starts while 1 stays open.
    BOOST_TEST(s.tick() == (words{"connect 2", "wait 500"}), boost::test_tools::per_element());
    s.at(251ms);
    BOOST_TEST(s.step(ev::connected, 2) == (words{"read 2", "wait 500"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"connect 3", "wait 750"}), boost::test_tools::per_element());
    BOOST_TEST(s.m.open() == 3u);
    // The guest's sshd answers the fresh SYN of connection 2 first.
    s.at(600ms);
    BOOST_TEST(s.step(ev::data, 2, banner + "\r\n") == (words{"done"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.banner() == banner);
    BOOST_TEST(s.m.attempts() == 3);
    BOOST_TEST(s.m.open() == 0u); // done: the driver closes all three
}

BOOST_AUTO_TEST_CASE(open_connections_are_bounded_and_the_oldest_makes_room) {
    probe_options o = script::overlapping();
    o.attempt_interval = 100ms;
    o.max_open_attempts = 3;
    o.attempt_timeout = 10s;
    script s(o);
    s.start();
    s.step(ev::connected, 1);
    s.tick(); // 100: connect 2
    s.step(ev::connected, 2);
    s.tick(); // 200: connect 3 (still connecting)
    BOOST_TEST(s.m.open() == 3u);
    // 300: a fourth is due; the oldest (1) is closed to make room.
    BOOST_TEST(s.tick() == (words{"close 1", "connect 4", "wait 400"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.open() == 3u);
    BOOST_TEST(s.m.last_failure() == "connection accepted but no SSH banner within 300 ms");
    // Making room is not a failure: the next one is still 100 ms away.
    BOOST_TEST(s.tick() == (words{"close 2", "connect 5", "wait 500"}),
               boost::test_tools::per_element());
    // A connection still connecting is the oldest next.
    BOOST_TEST(s.tick() == (words{"close 3", "connect 6", "wait 600"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.last_failure() == "connect timed out");
    BOOST_TEST(s.m.attempts() == 6);
}

BOOST_AUTO_TEST_CASE(max_open_attempts_one_replaces_the_connection_every_interval) {
    probe_options o = script::overlapping();
    o.attempt_interval = 500ms;
    o.max_open_attempts = 1; // the hand loop: each connection gets 500 ms
    script s(o);
    s.start();
    s.step(ev::connected, 1);
    BOOST_TEST(s.tick() == (words{"close 1", "connect 2", "wait 1000"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.open() == 1u);
}

// The library's defaults (500 ms interval, one connection at a time). The
// guest answers once (a reset: its network is up, sshd not listening yet);
// from then on a silent connection is sshd being slow, and it is left to
// run to its timeout, the next one twice as long, up to 12 s. One open at a
// time throughout.
BOOST_AUTO_TEST_CASE(once_the_guest_answered_silent_connections_are_not_replaced) {
    script s{probe_options()};
    BOOST_TEST(s.start() == (words{"connect 1", "wait 500"}), boost::test_tools::per_element());
    BOOST_TEST(!s.m.answered());
    s.at(2ms);
    BOOST_TEST(s.step(ev::connected, 1) == (words{"read 1", "wait 500"}),
               boost::test_tools::per_element());
    s.at(5ms);
    BOOST_TEST(s.step(ev::closed, 1) == (words{"close 1", "wait 15"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.answered());
    // No fresh connection at 515 while 2 is open: only its connect deadline.
    BOOST_TEST(s.tick() == (words{"connect 2", "wait 1015"}), boost::test_tools::per_element());
    s.at(16ms);
    BOOST_TEST(s.step(ev::connected, 2) == (words{"read 2", "wait 3015"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"close 2", "wait 3035"}), boost::test_tools::per_element());
    BOOST_TEST(s.m.last_failure() == "connection accepted but no SSH banner within 3000 ms");
    BOOST_TEST(s.tick() == (words{"connect 3", "wait 4035"}), boost::test_tools::per_element());
    BOOST_TEST(s.step(ev::connected, 3) == (words{"read 3", "wait 9035"}), // 6 s
               boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"close 3", "wait 9065"}), boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"connect 4", "wait 10065"}), boost::test_tools::per_element());
    BOOST_TEST(s.step(ev::connected, 4) == (words{"read 4", "wait 21065"}), // 12 s
               boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"close 4", "wait 21095"}), boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"connect 5", "wait 22095"}), boost::test_tools::per_element());
    BOOST_TEST(s.step(ev::connected, 5) == (words{"read 5", "wait 33095"}), // capped
               boost::test_tools::per_element());
    s.at(25000ms);
    BOOST_TEST(s.step(ev::data, 5, banner + "\r\n") == (words{"done"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.attempts() == 5);
}

// A connect that times out is no sign of a slow sshd: no growth.
BOOST_AUTO_TEST_CASE(a_connect_timeout_after_the_guest_answered_keeps_the_patience) {
    probe_options o;
    o.network_up = true;
    script s{o};
    BOOST_TEST(s.m.answered());
    BOOST_TEST(s.start() == (words{"connect 1", "wait 1000"}), boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"close 1", "wait 1010"}), boost::test_tools::per_element());
    BOOST_TEST(s.m.last_failure() == "connect timed out");
    BOOST_TEST(s.tick() == (words{"connect 2", "wait 2010"}), boost::test_tools::per_element());
    BOOST_TEST(s.step(ev::connected, 2) == (words{"read 2", "wait 4010"}), // still 3 s
               boost::test_tools::per_element());
}

// A clone restored from a snapshot of a running guest: its network is up
// from the start (network_up), and its sshd, cold after the restore, takes
// 1.5 s for the banner. The first connection waits for it; the replacing
// probe closed it at 500 ms and every later one likewise.
BOOST_AUTO_TEST_CASE(network_up_holds_the_first_connection_for_its_banner) {
    probe_options o;
    o.network_up = true;
    script s{o};
    BOOST_TEST(s.start() == (words{"connect 1", "wait 1000"}), boost::test_tools::per_element());
    s.at(3ms);
    BOOST_TEST(s.step(ev::connected, 1) == (words{"read 1", "wait 3000"}),
               boost::test_tools::per_element());
    s.at(1500ms);
    BOOST_TEST(s.step(ev::data, 1, banner + "\r\n") == (words{"done"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.attempts() == 1);
}

// Overlapping connections opened before the guest answered stay open to
// their own timeouts; no fresh one starts until all are gone.
BOOST_AUTO_TEST_CASE(overlapping_connections_run_out_once_the_guest_answered) {
    script s; // a fresh connection every 250 ms, up to 12 open
    s.start();
    s.step(ev::connected, 1);
    s.tick(); // 250: connect 2
    s.step(ev::connected, 2);
    s.tick(); // 500: connect 3
    s.step(ev::connected, 3);
    s.at(600ms);
    // 3 is reset: the guest answered. 1 and 2 keep running; nothing new.
    BOOST_TEST(s.step(ev::closed, 3, {}, "Connection reset by peer") ==
                   (words{"close 3", "wait 3000"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"close 1", "wait 3250"}), boost::test_tools::per_element());
    BOOST_TEST(s.m.open() == 1u);
    // 2 runs out; then the retry after the (third) pause, with the doubled
    // patience.
    BOOST_TEST(s.tick() == (words{"close 2", "wait 3280"}), boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"connect 4", "wait 4280"}), boost::test_tools::per_element());
    BOOST_TEST(s.step(ev::connected, 4) == (words{"read 4", "wait 9280"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_failure_beside_a_silent_connection_retries_soon_and_keeps_it) {
    script s;
    s.start();
    s.step(ev::connected, 1); // silent
    s.tick();                 // 250: connect 2
    BOOST_TEST(s.step(ev::connect_failed, 2, {}, "Connection refused") ==
                   (words{"close 2", "wait 260"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"connect 3", "wait 510"}), boost::test_tools::per_element());
    BOOST_TEST(s.m.open() == 2u); // 1 is still read
    s.at(300ms);
    BOOST_TEST(s.step(ev::data, 1, banner + "\n") == (words{"done"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(refused_then_banner_with_capped_backoff) {
    probe_options o = script::overlapping();
    o.retry_interval = 10ms;
    o.max_retry_interval = 30ms;
    script s(o);
    s.start();
    std::vector<long long> waits;
    for (std::uint32_t id = 1; id <= 5; ++id) {
        auto w = s.step(ev::connect_failed, id, {}, "Connection refused");
        BOOST_TEST_REQUIRE(w.size() == 2u);
        BOOST_TEST(w[0] == "close " + std::to_string(id));
        waits.push_back(std::chrono::duration_cast<ms>(s.last.until - s.now).count());
        auto after = s.tick();
        BOOST_TEST(after == (words{"connect " + std::to_string(id + 1),
                                   s.word({kind::wait, 0, s.now + 250ms})}),
                   boost::test_tools::per_element());
    }
    BOOST_TEST(waits == (std::vector<long long>{10, 20, 30, 30, 30}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.last_failure() == "connect: Connection refused");
    s.step(ev::connected, 6);
    BOOST_TEST(s.step(ev::data, 6, banner + "\n") == (words{"done"}),
               boost::test_tools::per_element()); // bare LF accepted
    BOOST_TEST(s.m.banner() == banner);
    BOOST_TEST(s.m.attempts() == 6);
}

BOOST_AUTO_TEST_CASE(accepted_then_closed_is_retried) {
    script s;
    s.start();
    s.step(ev::connected, 1);
    BOOST_TEST(s.step(ev::closed, 1) == (words{"close 1", "wait 10"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.m.last_failure() == "connection closed before the SSH banner");
    s.tick();
    s.step(ev::connected, 2);
    s.step(ev::data, 2, "garbage\r\n");
    s.step(ev::closed, 2);
    BOOST_TEST(s.m.last_failure() == "connection closed after 9 bytes without an SSH banner");
    s.tick();
    s.step(ev::connected, 3);
    BOOST_TEST(s.step(ev::closed, 3, {}, "Connection reset by peer")[0] == "close 3");
    BOOST_TEST(s.m.last_failure() == "read: Connection reset by peer");
}

BOOST_AUTO_TEST_CASE(silent_connection_is_read_until_the_attempt_timeout) {
    auto o = one_at_a_time();
    o.attempt_timeout = 2000ms;
    script s(o);
    s.start();
    s.at(1ms);
    // The attempt's time counts from its connect.
    BOOST_TEST(s.step(ev::connected, 1) == (words{"read 1", "wait 2000"}),
               boost::test_tools::per_element());
    // Partial data does not restart the attempt's clock.
    s.at(501ms);
    BOOST_TEST(s.step(ev::data, 1, "SSH-2.0-slo") == (words{"read 1", "wait 2000"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"close 1", "wait 2010"}), boost::test_tools::per_element());
    BOOST_TEST(s.m.last_failure() == "connection accepted but no SSH banner within 2000 ms");
    // The next attempt starts with a fresh line buffer.
    s.tick();
    s.step(ev::connected, 2);
    BOOST_TEST(s.step(ev::data, 2, "w\r\n")[0] == "read 2");
}

BOOST_AUTO_TEST_CASE(connect_timeout_is_an_attempt_failure) {
    script s(one_at_a_time());
    BOOST_TEST(s.start() == (words{"connect 1", "wait 1000"}), boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"close 1", "wait 1010"}), boost::test_tools::per_element());
    BOOST_TEST(s.m.last_failure() == "connect timed out");
}

BOOST_AUTO_TEST_CASE(lines_are_per_connection) {
    script s;
    s.start();
    s.step(ev::connected, 1);
    s.tick();
    s.step(ev::connected, 2);
    // Halves of a banner on two connections do not make one. (Bytes mean
    // the guest answered: no fresh connection is due any more, the wait is
    // for connection 1's timeout.)
    BOOST_TEST(s.step(ev::data, 1, "SSH-2.0-") == (words{"read 1", "wait 3000"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.step(ev::data, 2, "Open\r\n") == (words{"read 2", "wait 3000"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.step(ev::data, 1, "A\r\n") == (words{"done"}), boost::test_tools::per_element());
    BOOST_TEST(s.m.banner() == "SSH-2.0-A");
}

BOOST_AUTO_TEST_CASE(banner_after_other_lines) {
    script s;
    s.start();
    s.step(ev::connected, 1);
    BOOST_TEST(s.step(ev::data, 1, "Welcome\r\n\r\nnot SSH- at the start\r\n")[0] == "read 1");
    BOOST_TEST(s.step(ev::data, 1, "SSH-1.99-Compat\r\nSSH-2.0-Later\r\n")[0] == "done");
    BOOST_TEST(s.m.banner() == "SSH-1.99-Compat"); // the first SSH- line wins
}

BOOST_AUTO_TEST_CASE(every_split_of_the_stream_yields_the_same_banner) {
    const std::string stream = "pre-banner line\r\n" + banner + "\r\nkex bytes follow";
    const std::size_t banner_end = stream.find("\r\n", 17) + 2; // the LF that completes it
    for (std::size_t cut = 1; cut < stream.size(); ++cut) {
        script s;
        s.start();
        s.step(ev::connected, 1);
        auto w = s.step(ev::data, 1, std::string_view(stream).substr(0, cut));
        if (cut >= banner_end) {
            BOOST_TEST(w[0] == "done", "cut " << cut);
        } else {
            BOOST_TEST(w[0] == "read 1", "cut " << cut);
            w = s.step(ev::data, 1, std::string_view(stream).substr(cut));
            BOOST_TEST(w[0] == "done", "cut " << cut);
        }
        BOOST_TEST(s.m.banner() == banner, "cut " << cut);
    }
    // Byte by byte: done exactly at the banner's LF.
    script s;
    s.start();
    s.step(ev::connected, 1);
    for (std::size_t i = 0; i < stream.size(); ++i) {
        auto w = s.step(ev::data, 1, std::string_view(stream).substr(i, 1));
        if (i + 1 < banner_end) {
            BOOST_TEST_REQUIRE(w[0] == "read 1", "byte " << i);
        } else {
            BOOST_TEST(w[0] == "done");
            break;
        }
    }
    BOOST_TEST(s.m.banner() == banner);
}

BOOST_AUTO_TEST_CASE(lines_are_limited_to_255_bytes_with_their_line_end) {
    {   // 253 + CRLF = 255: accepted.
        script s;
        s.start();
        s.step(ev::connected, 1);
        std::string longest = "SSH-2.0-" + std::string(253 - 8, 'x');
        BOOST_TEST(s.step(ev::data, 1, longest + "\r\n")[0] == "done");
        BOOST_TEST(s.m.banner().size() == 253u);
    }
    {   // 254 + CRLF: too long, even before a line end arrives; retried.
        script s;
        s.start();
        s.step(ev::connected, 1);
        BOOST_TEST(s.step(ev::data, 1, std::string(254, 'x'))[0] == "read 1");
        BOOST_TEST(s.step(ev::data, 1, "\r") == (words{"close 1", "wait 10"}),
                   boost::test_tools::per_element());
        BOOST_TEST(s.m.last_failure() == "a line longer than 255 bytes (not an SSH server)");
    }
    {   // Overlong lines before the banner count as well.
        script s;
        s.start();
        s.step(ev::connected, 1);
        BOOST_TEST(s.step(ev::data, 1, std::string(300, 'y') + "\r\n" + banner + "\r\n")[0] ==
                   "close 1");
    }
}

BOOST_AUTO_TEST_CASE(overall_deadline_fails_with_the_last_failure) {
    auto o = one_at_a_time();
    o.timeout = 100ms;
    o.retry_interval = 30ms;
    o.max_retry_interval = 30ms;
    o.attempt_timeout = 50ms;
    script s(o);
    s.start();
    s.at(1ms);
    BOOST_TEST(s.step(ev::connect_failed, 1, {}, "Connection refused") ==
                   (words{"close 1", "wait 31"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"connect 2", "wait 81"}), boost::test_tools::per_element());
    s.step(ev::connected, 2);
    // The attempt times out at 81; the retry pause is clipped at the deadline.
    BOOST_TEST(s.tick() == (words{"close 2", "wait 100"}), boost::test_tools::per_element());
    BOOST_TEST(s.tick() == (words{"fail"}), boost::test_tools::per_element());
    BOOST_TEST((s.m.error() == errc::ssh_unreachable));
    BOOST_TEST(s.m.diagnostic() ==
               "no SSH banner from 127.0.0.1:2222 within 100 ms (2 attempts); last: connection "
               "accepted but no SSH banner within 50 ms");
    BOOST_TEST(s.m.open() == 0u);
}

BOOST_AUTO_TEST_CASE(waits_are_clipped_at_the_deadline) {
    auto o = one_at_a_time();
    o.timeout = 1000ms;
    script s(o);
    s.start();
    s.at(900ms);
    BOOST_TEST(s.step(ev::connected, 1) == (words{"read 1", "wait 1000"}),
               boost::test_tools::per_element());
    BOOST_TEST(s.tick()[0] == "fail");
    BOOST_TEST(s.m.attempts() == 1);
    BOOST_TEST(s.m.diagnostic().find("(1 attempt)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_options_fail_without_throwing) {
    auto check = [](probe_options o, const std::string& what) {
        script s(o);
        BOOST_TEST(s.start() == (words{"fail"}), boost::test_tools::per_element());
        BOOST_TEST((s.m.error() == errc::invalid_argument));
        BOOST_TEST(s.m.diagnostic().find(what) != std::string::npos, s.m.diagnostic());
    };
    probe_options o = script::overlapping();
    o.retry_interval = 0ms;
    check(o, "duration must be positive");
    o = {};
    o.attempt_interval = -1ms;
    check(o, "duration must be positive");
    o = {};
    o.max_open_attempts = 0;
    check(o, "max_open_attempts must be at least 1");
}

BOOST_AUTO_TEST_CASE(unexpected_events_fail_without_throwing) {
    auto expect_fail = [](script& s, ev e, std::uint32_t id, std::string_view data = {}) {
        BOOST_TEST(s.feed(e, id, data) == "fail");
        BOOST_TEST((s.m.error() == errc::invalid_argument));
    };
    {   // Data while connecting.
        script s;
        s.start();
        expect_fail(s, ev::data, 1, "SSH-2.0-x\r\n");
    }
    {   // An event for a connection that does not exist (or was closed).
        script s;
        s.start();
        expect_fail(s, ev::connected, 7);
    }
    {   // An I/O event before the started action was acknowledged.
        script s;
        BOOST_TEST(s.feed(ev::start) == "connect 1");
        expect_fail(s, ev::connected, 1);
    }
    {   // issued while waiting; tick while issuing; start twice.
        script s;
        s.start();
        expect_fail(s, ev::issued, 0);
        script t;
        t.feed(ev::start);
        expect_fail(t, ev::tick, 0);
        script u;
        u.start();
        expect_fail(u, ev::start, 0);
    }
}
