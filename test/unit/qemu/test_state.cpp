#define BOOST_TEST_MODULE qemu_state
#include <localvm/error.hpp>
#include <localvm/qemu/state.hpp>

#include <boost/test/unit_test.hpp>

#include <csignal>

using namespace localvm::qemu;
using localvm::errc;

BOOST_AUTO_TEST_CASE(round_trip) {
    vm_state s;
    s.pid = 4242;
    s.accel = accelerator::kvm;
    s.ports = {{"127.0.0.1", 34145, 22}, {"0.0.0.0", 8080, 80}};
    s.started_at = 1795726297;
    s.stopping = true;
    s.last_end = end_reason::guest_shutdown;
    s.last_end_detail = "exited 0";
    s.ended_at = 1795726300;
    s.stopped_by = stop_step::quit;
    auto text = render_state(s);
    BOOST_TEST(text ==
               "{\"pid\":4242,\"accelerator\":\"kvm\",\"ports\":[{\"host_address\":\"127.0.0.1\","
               "\"host_port\":34145,\"guest_port\":22},{\"host_address\":\"0.0.0.0\",\"host_port\":"
               "8080,\"guest_port\":80}],\"started_at\":1795726297,\"stopping\":true,\"last_end\":"
               "\"guest-shutdown\",\"last_end_detail\":\"exited 0\",\"ended_at\":1795726300,\"stopped_by\":\"quit\"}\n");
    boost::system::error_code ec;
    auto back = parse_state(text, ec);
    BOOST_REQUIRE(back);
    BOOST_TEST(!ec);
    BOOST_TEST(back->pid == 4242);
    BOOST_TEST((back->accel == accelerator::kvm));
    BOOST_TEST(back->ports.size() == 2u);
    BOOST_TEST(back->ports[1].host_address == "0.0.0.0");
    BOOST_TEST(back->ports[0].host_port == 34145);
    BOOST_TEST(back->stopping);
    BOOST_TEST((back->last_end == end_reason::guest_shutdown));
    BOOST_TEST(back->last_end_detail == "exited 0");
    BOOST_TEST(back->ended_at == 1795726300);
    BOOST_TEST((back->stopped_by == stop_step::quit));
    // A state file from before `stopped_by` existed reads as none.
    auto old = parse_state("{\"pid\":1,\"started_at\":1}", ec);
    BOOST_REQUIRE(old);
    BOOST_TEST((old->stopped_by == stop_step::none));
    for (auto step : {stop_step::none, stop_step::powerdown, stop_step::agent, stop_step::quit, stop_step::sigterm,
                      stop_step::sigkill}) {
        vm_state t;
        t.stopped_by = step;
        auto again = parse_state(render_state(t), ec);
        BOOST_REQUIRE(again);
        BOOST_TEST((again->stopped_by == step), to_string(step));
    }
    // The KVM fallback's reason: written only when there is one.
    BOOST_TEST(render_state(vm_state{}).find("accel_fallback") == std::string::npos);
    vm_state f;
    f.accel_fallback = "no console output within 20 s";
    auto fb = parse_state(render_state(f), ec);
    BOOST_REQUIRE(fb);
    BOOST_TEST(fb->accel_fallback == f.accel_fallback);
}

BOOST_AUTO_TEST_CASE(malformed_state_is_an_error_code) {
    boost::system::error_code ec;
    for (const char* bad : {"", "{", "[]", "{\"pid\":\"x\",\"started_at\":1}", "{\"pid\":1}",
                            "{\"pid\":1,\"started_at\":1,\"ports\":[1]}",
                            "{\"pid\":1,\"started_at\":1,\"ports\":[{\"host_port\":1}]}"}) {
        BOOST_TEST(!parse_state(bad, ec), bad);
        BOOST_TEST((ec == errc::protocol_error), bad);
    }
}

BOOST_AUTO_TEST_CASE(end_classification) {
    BOOST_TEST((classify_end("exited", 0, true) == end_reason::stopped));
    BOOST_TEST((classify_end("signaled", SIGKILL, true) == end_reason::stopped));
    BOOST_TEST((classify_end("exited", 0, false) == end_reason::guest_shutdown));
    BOOST_TEST((classify_end("exited", 1, false) == end_reason::crashed));
    BOOST_TEST((classify_end("signaled", SIGKILL, false) == end_reason::killed));
    BOOST_TEST((classify_end("signaled", SIGSEGV, false) == end_reason::crashed));
    BOOST_TEST(to_string(end_reason::guest_shutdown) == "guest-shutdown");
}

BOOST_AUTO_TEST_CASE(nics_round_trip) {
    vm_state s;
    s.pid = 1;
    s.started_at = 2;
    s.nics = {{"lan", "vnic0", "0e:01:02:03:04:05", "10.0.0.1/24", true},
              {"dmz", "vnic1", "0a:00:00:00:00:01", "", false}};
    auto text = render_state(s);
    BOOST_TEST(text.find(",\"nics\":[{\"network\":\"lan\",\"id\":\"vnic0\",\"mac\":\"0e:01:02:03:"
                         "04:05\",\"address\":\"10.0.0.1/24\",\"link_up\":true},{\"network\":"
                         "\"dmz\",\"id\":\"vnic1\",\"mac\":\"0a:00:00:00:00:01\",\"address\":\"\","
                         "\"link_up\":false}]}\n") != std::string::npos,
               text);
    boost::system::error_code ec;
    auto back = parse_state(text, ec);
    BOOST_REQUIRE(back);
    BOOST_REQUIRE(back->nics.size() == 2u);
    BOOST_TEST(back->nics[0].address == "10.0.0.1/24");
    BOOST_TEST(!back->nics[1].link_up);
    BOOST_TEST(back->nics[1].id == "vnic1");
    BOOST_TEST(!parse_state("{\"pid\":1,\"started_at\":1,\"nics\":[{\"network\":\"a\"}]}", ec));
    // No NICs, no key: state files stay as they were.
    s.nics.clear();
    BOOST_TEST(render_state(s).find("nics") == std::string::npos);
}
