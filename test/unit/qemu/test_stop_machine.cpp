// stop's escalation, driven by scripted events and a scripted clock: every
// path from the power button to SIGKILL, with no QEMU and no waiting.
#define BOOST_TEST_MODULE qemu_stop_machine
#include "stop_machine.hpp"

#include <boost/test/unit_test.hpp>

#include <csignal>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace localvm::qemu;
using namespace localvm::qemu::detail;

namespace {

using ms = std::chrono::milliseconds;
using kind = stop_action_kind;
using ev = stop_event_kind;

stop_options quick() {
    stop_options o;
    o.powerdown_timeout = 10s;
    o.powerdown_repeat = 3s;
    o.quit_timeout = 4s;
    o.term_timeout = 5s;
    o.kill_timeout = 6s;
    o.agent_timeout = 0ms; // the agent rung has tests of its own below
    return o;
}

struct script {
    stop_machine m;
    stop_clock::time_point now{};
    stop_action last;
    std::vector<std::string> said;

    explicit script(stop_options o = quick())
        : m(4242, o) {}

    stop_action feed(ev e, std::string_view text = {}) {
        last = m.resume({e, text}, now);
        if (!last.message.empty())
            said.push_back(last.message);
        return last;
    }
    void advance(stop_clock::duration d) { now += d; }
    void elapse() { now += last.timeout; }
};

ms as_ms(stop_clock::duration d) {
    return std::chrono::duration_cast<ms>(d);
}

// Start, connect: the first press.
void to_first_press(script& s) {
    auto a = s.feed(ev::start);
    BOOST_TEST((a.kind == kind::connect));
    BOOST_TEST(as_ms(a.timeout) == ms(stop_machine::connect_timeout));
    a = s.feed(ev::connected);
    BOOST_TEST((a.kind == kind::powerdown));
    BOOST_TEST(as_ms(a.timeout) == ms(10s)); // the rest of the powerdown window
    BOOST_TEST(a.message == "stopping: ACPI power button");
}

stop_options with_agent() {
    auto o = quick();
    o.agent_timeout = 8s;
    return o;
}

// Start, connect, the button ignored for the whole window: the agent.
void to_agent(script& s) {
    to_first_press(s);
    s.feed(ev::replied);
    for (int i = 0; i < 3; ++i) { // presses at 0, 3, 6, 9 s
        s.elapse();
        s.feed(ev::waited);
        s.feed(ev::replied);
    }
    s.elapse();
    auto a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::agent_shutdown));
    BOOST_TEST(as_ms(a.timeout) == ms(stop_machine::agent_call_timeout));
    BOOST_TEST(a.message ==
               "the guest did not power off within 10000 ms; asking the guest agent (guest-shutdown)");
}

} // namespace

BOOST_AUTO_TEST_CASE(the_guest_powers_off_after_the_first_press) {
    script s;
    to_first_press(s);
    s.advance(5ms);
    auto a = s.feed(ev::replied);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(as_ms(a.timeout) == ms(3s - 5ms)); // until the next press
    s.advance(1s);
    a = s.feed(ev::exited);
    BOOST_TEST((a.kind == kind::done));
    BOOST_TEST((s.m.ended_by() == stop_step::powerdown));
    BOOST_TEST(s.m.presses() == 1);
    BOOST_TEST(as_ms(s.m.elapsed(s.now)) == ms(1005ms));
    // Finished: further events change nothing.
    BOOST_TEST((s.feed(ev::waited).kind == kind::done));
}

BOOST_AUTO_TEST_CASE(a_booting_guest_gets_the_button_again_every_repeat) {
    script s;
    to_first_press(s);
    s.feed(ev::replied);
    s.elapse(); // 3 s: no power-off yet
    auto a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::powerdown));
    BOOST_TEST(as_ms(a.timeout) == ms(7s));
    BOOST_TEST(a.message.find("again") != std::string::npos, a.message);
    a = s.feed(ev::replied);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(as_ms(a.timeout) == ms(3s));
    s.elapse();
    a = s.feed(ev::waited); // 6 s: third press
    BOOST_TEST((a.kind == kind::powerdown));
    s.feed(ev::replied);
    s.advance(2s);
    a = s.feed(ev::exited);
    BOOST_TEST((a.kind == kind::done));
    BOOST_TEST((s.m.ended_by() == stop_step::powerdown));
    BOOST_TEST(s.m.presses() == 3);
}

BOOST_AUTO_TEST_CASE(the_last_wait_ends_at_the_window_not_after_it) {
    script s;
    to_first_press(s);
    s.feed(ev::replied);
    for (int i = 0; i < 3; ++i) { // presses at 0, 3, 6, 9 s
        s.elapse();
        BOOST_TEST((s.feed(ev::waited).kind == kind::powerdown));
        s.feed(ev::replied);
    }
    BOOST_TEST(as_ms(s.last.timeout) == ms(1s)); // 9 s + 1 s = the 10 s window
    s.elapse();
    auto a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::quit));
    BOOST_TEST(a.message == "the guest did not power off within 10000 ms; quit");
    BOOST_TEST(as_ms(a.timeout) == ms(4s));
    BOOST_TEST(s.m.presses() == 4);
}

BOOST_AUTO_TEST_CASE(without_repeat_one_press_and_one_wait) {
    auto o = quick();
    o.powerdown_repeat = 0ms;
    script s(o);
    to_first_press(s);
    auto a = s.feed(ev::replied);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(as_ms(a.timeout) == ms(10s));
    s.elapse();
    BOOST_TEST((s.feed(ev::waited).kind == kind::quit));
    BOOST_TEST(s.m.presses() == 1);
}

BOOST_AUTO_TEST_CASE(a_zero_powerdown_window_quits_at_once) {
    auto o = quick();
    o.powerdown_timeout = 0ms;
    script s(o);
    s.feed(ev::start);
    auto a = s.feed(ev::connected);
    BOOST_TEST((a.kind == kind::quit));
    BOOST_TEST(a.message.find("powerdown_timeout 0") != std::string::npos, a.message);
    BOOST_TEST(s.m.presses() == 0);
    s.feed(ev::replied);
    BOOST_TEST((s.feed(ev::exited).kind == kind::done));
    BOOST_TEST((s.m.ended_by() == stop_step::quit));
}

BOOST_AUTO_TEST_CASE(a_guest_ignoring_acpi_ends_through_quit) {
    script s;
    to_first_press(s);
    s.feed(ev::replied);
    s.advance(10s);
    auto a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::quit));
    s.advance(10ms);
    a = s.feed(ev::replied);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(as_ms(a.timeout) == ms(4s - 10ms)); // quit_timeout counts from the quit
    a = s.feed(ev::exited);
    BOOST_TEST((a.kind == kind::done));
    BOOST_TEST((s.m.ended_by() == stop_step::quit));
}

BOOST_AUTO_TEST_CASE(quit_ignored_escalates_to_sigterm_then_sigkill) {
    script s;
    to_first_press(s);
    s.feed(ev::replied);
    s.advance(10s);
    s.feed(ev::waited);
    s.feed(ev::replied);
    s.elapse();
    auto a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::signal));
    BOOST_TEST(a.signal == SIGTERM);
    BOOST_TEST(as_ms(a.timeout) == ms(5s));
    BOOST_TEST(a.message == "SIGTERM");
    s.elapse();
    a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::signal));
    BOOST_TEST(a.signal == SIGKILL);
    BOOST_TEST(as_ms(a.timeout) == ms(6s));
    a = s.feed(ev::exited);
    BOOST_TEST((a.kind == kind::done));
    BOOST_TEST((s.m.ended_by() == stop_step::sigkill));
}

BOOST_AUTO_TEST_CASE(sigterm_ends_it) {
    script s;
    s.feed(ev::start);
    s.feed(ev::connect_failed, "connecting to QMP: timed out");
    BOOST_TEST((s.last.kind == kind::signal));
    BOOST_TEST(s.last.signal == SIGTERM);
    BOOST_TEST(s.last.message == "no QMP connection (connecting to QMP: timed out); using signals");
    BOOST_TEST((s.feed(ev::exited).kind == kind::done));
    BOOST_TEST((s.m.ended_by() == stop_step::sigterm));
    BOOST_TEST(s.m.presses() == 0);
}

BOOST_AUTO_TEST_CASE(outliving_sigkill_fails_with_a_diagnostic) {
    script s;
    s.feed(ev::start);
    s.feed(ev::connect_failed, "refused");
    s.elapse();
    s.feed(ev::waited);
    s.elapse();
    auto a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::fail));
    BOOST_TEST(s.m.diagnostic() == "QEMU (pid 4242) did not exit after SIGKILL");
    BOOST_TEST((s.feed(ev::exited).kind == kind::fail));
}

BOOST_AUTO_TEST_CASE(a_stalled_or_failing_powerdown_goes_to_quit) {
    script s;
    to_first_press(s);
    s.advance(10s); // the command's own timeout: the whole window
    auto a = s.feed(ev::command_failed, "QMP command system_powerdown: no reply within 10000 ms");
    BOOST_TEST((a.kind == kind::quit));
    BOOST_TEST(a.message ==
               "system_powerdown failed: QMP command system_powerdown: no reply within 10000 ms");
    s.advance(4s);
    a = s.feed(ev::command_failed, "QMP command quit: no reply within 4000 ms");
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(a.message == "quit failed: QMP command quit: no reply within 4000 ms");
    BOOST_TEST(as_ms(a.timeout) == ms(1)); // the quit window is spent: just look
    a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::signal));
    BOOST_TEST(a.signal == SIGTERM);
}

BOOST_AUTO_TEST_CASE(a_failing_repeat_press_goes_to_quit_too) {
    script s;
    to_first_press(s);
    s.feed(ev::replied);
    s.elapse();
    BOOST_TEST((s.feed(ev::waited).kind == kind::powerdown));
    BOOST_TEST((s.feed(ev::command_failed, "x").kind == kind::quit));
}

BOOST_AUTO_TEST_CASE(a_reply_after_the_window_waits_zero_then_quits) {
    auto o = quick();
    o.powerdown_repeat = 0ms;
    script s(o);
    to_first_press(s);
    s.advance(11s);
    auto a = s.feed(ev::replied);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(as_ms(a.timeout) == ms(0));
    BOOST_TEST((s.feed(ev::waited).kind == kind::quit));
}

BOOST_AUTO_TEST_CASE(exit_is_taken_in_every_state) {
    // QEMU may end at any moment; each state records the step under way.
    struct path {
        std::vector<ev> before;
        stop_step step;
    };
    std::vector<path> paths = {
        {{}, stop_step::none},
        {{ev::start}, stop_step::none},
        {{ev::start, ev::connected}, stop_step::powerdown},
        {{ev::start, ev::connected, ev::replied}, stop_step::powerdown},
        {{ev::start, ev::connected, ev::command_failed}, stop_step::quit},
        {{ev::start, ev::connected, ev::command_failed, ev::replied}, stop_step::quit},
        {{ev::start, ev::connect_failed}, stop_step::sigterm},
        {{ev::start, ev::connect_failed, ev::waited}, stop_step::sigkill},
    };
    for (const auto& p : paths) {
        script s;
        for (auto e : p.before)
            s.feed(e, "why");
        BOOST_TEST((s.feed(ev::exited).kind == kind::done));
        BOOST_TEST((s.m.ended_by() == p.step), to_string(s.m.ended_by()));
    }
}

BOOST_AUTO_TEST_CASE(an_unexpected_event_fails_loudly) {
    script s;
    s.feed(ev::start);
    auto a = s.feed(ev::replied); // no command was sent
    BOOST_TEST((a.kind == kind::fail));
    BOOST_TEST(s.m.diagnostic().find("unexpected event") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_guest_ignoring_acpi_powers_off_through_its_agent) {
    script s(with_agent());
    to_agent(s);
    s.advance(20ms);
    auto a = s.feed(ev::replied);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(as_ms(a.timeout) == ms(8s)); // agent_timeout counts from the acceptance
    s.advance(2s);
    a = s.feed(ev::exited);
    BOOST_TEST((a.kind == kind::done));
    BOOST_TEST((s.m.ended_by() == stop_step::agent));
    BOOST_TEST(s.m.presses() == 4);
}

BOOST_AUTO_TEST_CASE(an_agent_that_does_not_answer_goes_to_quit) {
    script s(with_agent());
    to_agent(s);
    s.advance(3s);
    auto a = s.feed(ev::command_failed, "guest-shutdown: timed out");
    BOOST_TEST((a.kind == kind::quit));
    BOOST_TEST(a.message == "the guest agent did not take guest-shutdown (guest-shutdown: timed out); quit");
    BOOST_TEST(as_ms(a.timeout) == ms(4s));
    s.feed(ev::replied);
    BOOST_TEST((s.feed(ev::exited).kind == kind::done));
    BOOST_TEST((s.m.ended_by() == stop_step::quit));
}

BOOST_AUTO_TEST_CASE(a_guest_ignoring_its_agent_too_goes_to_quit_after_agent_timeout) {
    script s(with_agent());
    to_agent(s);
    s.feed(ev::replied);
    s.advance(5s); // an early wake-up waits out the rest
    auto a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::wait));
    BOOST_TEST(as_ms(a.timeout) == ms(3s));
    s.elapse();
    a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::quit));
    BOOST_TEST(a.message == "the guest did not power off within 8000 ms of guest-shutdown; quit");
    s.feed(ev::replied);
    s.elapse();
    a = s.feed(ev::waited);
    BOOST_TEST((a.kind == kind::signal));
    BOOST_TEST(a.signal == SIGTERM);
}

BOOST_AUTO_TEST_CASE(no_agent_after_a_failed_press_or_without_the_button) {
    // system_powerdown failing says QMP is in trouble: straight to quit.
    script s(with_agent());
    to_first_press(s);
    BOOST_TEST((s.feed(ev::command_failed, "x").kind == kind::quit));
    // A zero powerdown window skips the graceful rungs, the agent's too.
    auto o = with_agent();
    o.powerdown_timeout = 0ms;
    script z(o);
    z.feed(ev::start);
    BOOST_TEST((z.feed(ev::connected).kind == kind::quit));
}

BOOST_AUTO_TEST_CASE(exit_is_taken_in_the_agent_states) {
    for (int replied = 0; replied < 2; ++replied) {
        script s(with_agent());
        to_agent(s);
        if (replied)
            s.feed(ev::replied);
        BOOST_TEST((s.feed(ev::exited).kind == kind::done));
        BOOST_TEST((s.m.ended_by() == stop_step::agent));
    }
}
