// The readiness probe's state machine, driven by scripted events and a
// scripted clock: no sockets, no waiting.
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
    probe_clock::time_point now{}; // epoch: any fixed point works
    probe_action last;

    explicit script(probe_options o = {}) : m("127.0.0.1:2222", o) {}

    probe_action feed(ev e, std::string_view data = {}, std::string_view text = {}) {
        last = m.resume({e, data, text}, now);
        return last;
    }
    probe_action start() { return feed(ev::start); }
    void advance(probe_clock::duration d) { now += d; }
    // Follows the last action's timeout to its end.
    void elapse() { now += last.timeout; }
};

ms as_ms(probe_clock::duration d) { return std::chrono::duration_cast<ms>(d); }

const std::string banner = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";

} // namespace

BOOST_AUTO_TEST_CASE(banner_on_first_connection) {
    script s;
    auto a = s.start();
    BOOST_TEST((a.kind == kind::connect));
    BOOST_TEST(as_ms(a.timeout).count() == 1000); // connect_timeout default
    a = s.feed(ev::connected);
    BOOST_TEST((a.kind == kind::read));
    BOOST_TEST(as_ms(a.timeout).count() == 3000); // attempt_timeout default
    a = s.feed(ev::data, banner + "\r\n");
    BOOST_TEST((a.kind == kind::done));
    BOOST_TEST(s.m.banner() == banner);
    BOOST_TEST(s.m.attempts() == 1);
    // A finished machine keeps answering done.
    BOOST_TEST((s.feed(ev::waited).kind == kind::done));
}

BOOST_AUTO_TEST_CASE(refused_then_banner_with_capped_backoff) {
    probe_options o;
    o.retry_interval = 10ms;
    o.max_retry_interval = 30ms;
    script s(o);
    s.start();
    std::vector<long long> waits;
    for (int i = 0; i < 5; ++i) {
        auto a = s.feed(ev::connect_failed, {}, "Connection refused");
        BOOST_TEST((a.kind == kind::wait));
        waits.push_back(as_ms(a.timeout).count());
        s.elapse();
        BOOST_TEST((s.feed(ev::waited).kind == kind::connect));
    }
    BOOST_TEST(waits == (std::vector<long long>{10, 20, 30, 30, 30}), boost::test_tools::per_element());
    BOOST_TEST(s.m.last_failure() == "connect: Connection refused");
    BOOST_TEST((s.feed(ev::connected).kind == kind::read));
    BOOST_TEST((s.feed(ev::data, banner + "\n").kind == kind::done)); // bare LF accepted
    BOOST_TEST(s.m.banner() == banner);
    BOOST_TEST(s.m.attempts() == 6);
}

BOOST_AUTO_TEST_CASE(accepted_then_closed_is_retried) {
    script s;
    s.start();
    s.feed(ev::connected);
    auto a = s.feed(ev::closed);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(s.m.last_failure() == "connection closed before the SSH banner");
    s.elapse();
    s.feed(ev::waited);
    s.feed(ev::connected);
    s.feed(ev::data, "garbage\r\n");
    s.feed(ev::closed);
    BOOST_TEST(s.m.last_failure() == "connection closed after 9 bytes without an SSH banner");
    s.elapse();
    s.feed(ev::waited);
    s.feed(ev::connected);
    BOOST_TEST((s.feed(ev::closed, {}, "Connection reset by peer").kind == kind::wait));
    BOOST_TEST(s.m.last_failure() == "read: Connection reset by peer");
}

BOOST_AUTO_TEST_CASE(silent_connection_is_read_until_the_attempt_timeout) {
    probe_options o;
    o.attempt_timeout = 2000ms;
    script s(o);
    s.start();
    s.advance(1ms);
    auto a = s.feed(ev::connected);
    BOOST_TEST((a.kind == kind::read));
    BOOST_TEST(as_ms(a.timeout).count() == 1999); // attempt time counts from the connect
    // Partial data does not restart the attempt's clock.
    s.advance(500ms);
    a = s.feed(ev::data, "SSH-2.0-slo");
    BOOST_TEST((a.kind == kind::read));
    BOOST_TEST(as_ms(a.timeout).count() == 1499);
    s.elapse();
    a = s.feed(ev::io_timeout);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(s.m.last_failure() == "connection accepted but no SSH banner within 2000 ms");
    // The next attempt starts with a fresh line buffer.
    s.elapse();
    s.feed(ev::waited);
    s.feed(ev::connected);
    BOOST_TEST((s.feed(ev::data, "w\r\n").kind == kind::read));
}

BOOST_AUTO_TEST_CASE(connect_timeout_is_an_attempt_failure) {
    script s;
    auto a = s.start();
    s.elapse();
    a = s.feed(ev::io_timeout);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(s.m.last_failure() == "connect timed out");
}

BOOST_AUTO_TEST_CASE(banner_after_other_lines) {
    script s;
    s.start();
    s.feed(ev::connected);
    BOOST_TEST((s.feed(ev::data, "Welcome\r\n\r\nnot SSH- at the start\r\n").kind == kind::read));
    BOOST_TEST((s.feed(ev::data, "SSH-1.99-Compat\r\nSSH-2.0-Later\r\n").kind == kind::done));
    BOOST_TEST(s.m.banner() == "SSH-1.99-Compat"); // the first SSH- line wins
}

BOOST_AUTO_TEST_CASE(every_split_of_the_stream_yields_the_same_banner) {
    const std::string stream = "pre-banner line\r\n" + banner + "\r\nkex bytes follow";
    const std::size_t banner_end = stream.find("\r\n", 17) + 2; // the LF that completes it
    for (std::size_t cut = 1; cut < stream.size(); ++cut) {
        script s;
        s.start();
        s.feed(ev::connected);
        auto a = s.feed(ev::data, std::string_view(stream).substr(0, cut));
        if (cut >= banner_end) {
            BOOST_TEST((a.kind == kind::done), "cut " << cut);
        } else {
            BOOST_TEST((a.kind == kind::read), "cut " << cut);
            a = s.feed(ev::data, std::string_view(stream).substr(cut));
            BOOST_TEST((a.kind == kind::done), "cut " << cut);
        }
        BOOST_TEST(s.m.banner() == banner, "cut " << cut);
    }
    // Byte by byte: done exactly at the banner's LF.
    script s;
    s.start();
    s.feed(ev::connected);
    for (std::size_t i = 0; i < stream.size(); ++i) {
        auto a = s.feed(ev::data, std::string_view(stream).substr(i, 1));
        if (i + 1 < banner_end) {
            BOOST_TEST_REQUIRE((a.kind == kind::read), "byte " << i);
        } else {
            BOOST_TEST((a.kind == kind::done));
            break;
        }
    }
    BOOST_TEST(s.m.banner() == banner);
}

BOOST_AUTO_TEST_CASE(lines_are_limited_to_255_bytes_with_their_line_end) {
    {   // 253 + CRLF = 255: accepted.
        script s;
        s.start();
        s.feed(ev::connected);
        std::string longest = "SSH-2.0-" + std::string(253 - 8, 'x');
        BOOST_TEST((s.feed(ev::data, longest + "\r\n").kind == kind::done));
        BOOST_TEST(s.m.banner().size() == 253u);
    }
    {   // 254 + CRLF: too long, even before a line end arrives; retried.
        script s;
        s.start();
        s.feed(ev::connected);
        BOOST_TEST((s.feed(ev::data, std::string(254, 'x')).kind == kind::read));
        auto a = s.feed(ev::data, "\r");
        BOOST_TEST((a.kind == kind::wait));
        BOOST_TEST(s.m.last_failure() == "a line longer than 255 bytes (not an SSH server)");
    }
    {   // Overlong lines before the banner count as well.
        script s;
        s.start();
        s.feed(ev::connected);
        BOOST_TEST((s.feed(ev::data, std::string(300, 'y') + "\r\n" + banner + "\r\n").kind == kind::wait));
    }
}

BOOST_AUTO_TEST_CASE(overall_deadline_fails_with_the_last_failure) {
    probe_options o;
    o.timeout = 100ms;
    o.retry_interval = 30ms;
    o.max_retry_interval = 30ms;
    o.attempt_timeout = 50ms;
    script s(o);
    s.start();
    s.advance(1ms);
    s.feed(ev::connect_failed, {}, "Connection refused"); // wait 30 (t=1)
    s.elapse();
    s.feed(ev::waited); // t=31
    s.feed(ev::connected);
    auto a = s.last;
    BOOST_TEST(as_ms(a.timeout).count() == 50);
    s.elapse();
    s.feed(ev::io_timeout); // t=81; the wait is clipped at the deadline
    BOOST_TEST((s.last.kind == kind::wait));
    BOOST_TEST(as_ms(s.last.timeout).count() == 19);
    s.elapse();
    a = s.feed(ev::waited); // t=100
    BOOST_TEST((a.kind == kind::fail));
    BOOST_TEST((s.m.error() == errc::ssh_unreachable));
    BOOST_TEST(s.m.diagnostic() ==
               "no SSH banner from 127.0.0.1:2222 within 100 ms (2 attempts); last: connection "
               "accepted but no SSH banner within 50 ms");
}

BOOST_AUTO_TEST_CASE(reads_and_connects_are_clipped_at_the_deadline) {
    probe_options o;
    o.timeout = 1000ms;
    script s(o);
    s.start();
    s.advance(900ms);
    auto a = s.feed(ev::connected);
    BOOST_TEST(as_ms(a.timeout).count() == 100);
    s.elapse();
    a = s.feed(ev::io_timeout);
    BOOST_TEST((a.kind == kind::fail));
    BOOST_TEST(s.m.attempts() == 1);
    BOOST_TEST(s.m.diagnostic().find("(1 attempt)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_options_and_unexpected_events_fail_without_throwing) {
    probe_options o;
    o.retry_interval = 0ms;
    script s(o);
    auto a = s.start();
    BOOST_TEST((a.kind == kind::fail));
    BOOST_TEST((s.m.error() == errc::invalid_argument));

    script t;
    t.start();
    a = t.feed(ev::data, "SSH-2.0-x\r\n"); // data while connecting
    BOOST_TEST((a.kind == kind::fail));
    BOOST_TEST((t.m.error() == errc::invalid_argument));
}
