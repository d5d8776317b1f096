// What the localvm command prints: the status JSON (stable keys, parsed
// back with Boost.JSON), the timeline, the progress line.
#define BOOST_TEST_MODULE cli_report
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include "report.hpp"

using namespace localvm::cli;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

status_report sample(bool running) {
    status_report r;
    r.name = "vm1";
    r.st.exists = true;
    r.st.running = running;
    localvm::qemu::vm_state s;
    s.pid = 4242;
    s.accel = localvm::qemu::accelerator::tcg;
    s.ports = {{"127.0.0.1", 40000, 22}};
    s.started_at = 1000;
    if (running) {
        r.st.pid = 4242;
    } else {
        s.last_end = localvm::qemu::end_reason::stopped;
        s.last_end_detail = "exited 0";
        s.stopped_by = localvm::qemu::stop_step::powerdown;
    }
    r.st.state = s;
    localvm::qemu::options o;
    o.name = "vm1";
    o.data_dir = "/d";
    o.runtime_dir = "/r";
    r.files = localvm::qemu::make_layout(o);
    r.identity = "/d/vm1/id_ed25519";
    r.now = 1012;
    return r;
}

} // namespace

BOOST_AUTO_TEST_CASE(status_json_running) {
    auto text = render_status_json(sample(true));
    BOOST_TEST(text.find('\n') == std::string::npos);
    auto v = json::parse(text).as_object();
    std::vector<std::string> keys;
    for (const auto& kv : v)
        keys.emplace_back(kv.key());
    BOOST_TEST((keys == std::vector<std::string>{"name", "state", "pid", "accelerator", "ports",
                                                 "uptime_seconds", "last_end", "last_end_detail",
                                                 "paths", "monitor_socket", "stopped_by",
                                                 "accelerator_fallback", "nics"}));
    BOOST_TEST(v.at("name").as_string() == "vm1");
    BOOST_TEST(v.at("state").as_string() == "running");
    BOOST_TEST(v.at("pid").to_number<int>() == 4242);
    BOOST_TEST(v.at("accelerator").as_string() == "tcg");
    BOOST_TEST(v.at("uptime_seconds").to_number<int>() == 12);
    auto& p = v.at("ports").as_array().at(0).as_object();
    BOOST_TEST(p.at("host_address").as_string() == "127.0.0.1");
    BOOST_TEST(p.at("host_port").to_number<int>() == 40000);
    BOOST_TEST(p.at("guest_port").to_number<int>() == 22);
    auto& paths = v.at("paths").as_object();
    BOOST_TEST(paths.at("disk").as_string() == "/d/vm1/disk.qcow2");
    BOOST_TEST(paths.at("console_log").as_string() == "/r/vm1/console.log");
    BOOST_TEST(paths.at("identity").as_string() == "/d/vm1/id_ed25519");
    BOOST_TEST(v.at("monitor_socket").is_null()); // started without a monitor
}

BOOST_AUTO_TEST_CASE(status_shows_the_monitor) {
    auto r = sample(true);
    r.st.monitor = true;
    auto v = json::parse(render_status_json(r)).as_object();
    BOOST_TEST(v.at("monitor_socket").as_string() == "/r/vm1/monitor.sock");
    auto t = render_status_text(r);
    BOOST_TEST(t.find("monitor:  /r/vm1/monitor.sock (localvm monitor vm1)\n") != std::string::npos,
               t);
    auto without = render_status_text(sample(true));
    BOOST_TEST(without.find("monitor:  none (started without --monitor)\n") != std::string::npos,
               without);
    // A stopped VM has no monitor, whatever it had while it ran.
    auto stopped = sample(false);
    stopped.st.monitor = true;
    auto sv = json::parse(render_status_json(stopped)).as_object();
    BOOST_TEST(sv.at("monitor_socket").is_null());
    auto st = render_status_text(stopped);
    BOOST_TEST(st.find("monitor:") == std::string::npos, st);
}

BOOST_AUTO_TEST_CASE(status_json_stopped) {
    auto v = json::parse(render_status_json(sample(false))).as_object();
    BOOST_TEST(v.at("state").as_string() == "stopped");
    BOOST_TEST(v.at("pid").is_null());
    BOOST_TEST(v.at("accelerator").is_null());
    BOOST_TEST(v.at("uptime_seconds").is_null());
    BOOST_TEST(v.at("ports").as_array().empty());
    BOOST_TEST(v.at("last_end").as_string() == "stopped");
    BOOST_TEST(v.at("last_end_detail").as_string() == "exited 0");
    BOOST_TEST(v.at("stopped_by").as_string() == "powerdown");
    BOOST_TEST(json::parse(render_status_json(sample(true))).at("stopped_by").is_null());
    auto r = sample(false);
    r.st.exists = false;
    r.st.state.reset();
    auto absent = json::parse(render_status_json(r)).as_object();
    BOOST_TEST(absent.at("state").as_string() == "absent");
    BOOST_TEST(absent.at("last_end").as_string() == "none");
}

BOOST_AUTO_TEST_CASE(status_text) {
    auto t = render_status_text(sample(true));
    BOOST_TEST(t.find("state:    running (pid 4242, tcg, up 12 s)") != std::string::npos, t);
    BOOST_TEST(t.find("ports:    127.0.0.1:40000 -> 22") != std::string::npos, t);
    auto s = render_status_text(sample(false));
    BOOST_TEST(s.find("stopped (last end: stopped, exited 0, by powerdown)") != std::string::npos, s);
}

// Item 6 of issue 16: status says why a VM runs under TCG after a KVM attempt.
BOOST_AUTO_TEST_CASE(status_names_the_kvm_fallback) {
    auto r = sample(true);
    r.st.state->accel_fallback = "no console output within 20 s";
    auto t = render_status_text(r);
    BOOST_TEST(t.find("running (pid 4242, tcg after KVM failed: no console output within 20 s, "
                      "up 12 s)") != std::string::npos,
               t);
    auto v = json::parse(render_status_json(r)).as_object();
    BOOST_TEST(v.at("accelerator_fallback").as_string() == "no console output within 20 s");
    BOOST_TEST(json::parse(render_status_json(sample(true))).as_object().at(
                   "accelerator_fallback").is_null());
}

BOOST_AUTO_TEST_CASE(timeline_renders) {
    timeline t;
    t.vm = "vm1";
    t.entries = {{"qemu-spawned", 0.01, "pid 6, kvm attempt"},
                 {"kvm-fallback", 0.02, "KVM said no"},
                 {"qemu-spawned", 0.05, "pid 7"},
                 {"qmp-ready", 0.1, ""},
                 {"console-output", 1.5, ""},
                 {"ssh-banner", 9.25, "SSH-2.0-x"},
                 {"ssh-login", 9.5, "debian"}};
    auto table = render_timeline_table(t);
    BOOST_TEST(table == "boot timeline of vm1:\n"
                        "    0.01 s    +0.01 s  QEMU spawned         pid 6, kvm attempt\n"
                        "    0.02 s    +0.01 s  KVM given up         KVM said no\n"
                        "    0.05 s    +0.03 s  QEMU spawned         pid 7\n"
                        "    0.10 s    +0.05 s  QMP ready\n"
                        "    1.50 s    +1.40 s  first console output\n"
                        "    9.25 s    +7.75 s  SSH banner           SSH-2.0-x\n"
                        "    9.50 s    +0.25 s  SSH login            debian\n");
    auto v = json::parse(render_timeline_json(t)).as_object();
    BOOST_TEST(v.at("vm").as_string() == "vm1");
    auto& stages = v.at("stages").as_array();
    BOOST_REQUIRE(stages.size() == 7u);
    BOOST_TEST(stages[1].as_object().at("stage").as_string() == "kvm-fallback");
    BOOST_TEST(stages[5].as_object().at("stage").as_string() == "ssh-banner");
    BOOST_TEST(stages[5].as_object().at("seconds").to_number<double>() == 9.25);
    BOOST_TEST(stages[5].as_object().at("detail").as_string() == "SSH-2.0-x");
}

BOOST_AUTO_TEST_CASE(progress_line) {
    BOOST_TEST(status_line(12345ms, "booting", "", 80) == "[  12.3s] booting");
    BOOST_TEST(status_line(500ms, "booting", "Run /init", 80) == "[   0.5s] booting | Run /init");
    auto cut = status_line(500ms, "booting", "a very long console line indeed", 20);
    BOOST_TEST(cut == "[   0.5s] booting |\u2026");
    // Code points, not bytes: a multi-byte character is never split.
    auto u = status_line(0ms, "x", "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9", 16);
    BOOST_TEST(u == "[   0.0s] x | \u00e9\u2026");
    BOOST_TEST(status_line(0ms, "x", "", 0).empty());
}

// Guest text must reach the terminal inert: no OSC retitle, no CSI, no CR.
BOOST_AUTO_TEST_CASE(terminal_safe_escapes_control_characters) {
    BOOST_TEST(terminal_safe("SSH-2.0-OpenSSH_9.2\x1b]0;pwned\x07") ==
               "SSH-2.0-OpenSSH_9.2\\x1b]0;pwned\\x07");
    BOOST_TEST(terminal_safe("\x1b[2J\x1b[1;1H\x1b[31mred\x1b[0m") ==
               "\\x1b[2J\\x1b[1;1H\\x1b[31mred\\x1b[0m");
    BOOST_TEST(terminal_safe("fake\rreal") == "fake\\x0dreal");
    BOOST_TEST(terminal_safe("bell\a nul") == "bell\\x07 nul");
    BOOST_TEST(terminal_safe(std::string("a\0b", 3)) == "a\\x00b");
    BOOST_TEST(terminal_safe("del\x7f") == "del\\x7f");
    // Newline and tab stay; so does text in any script.
    BOOST_TEST(terminal_safe("one\n\ttwo") == "one\n\ttwo");
    BOOST_TEST(terminal_safe("caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x90\xa7") ==
               "caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x90\xa7");
    // C1 controls (U+009B is CSI to some terminals), and the raw 8-bit CSI
    // byte, which is not UTF-8.
    BOOST_TEST(terminal_safe("\xc2\x9b"
                             "2J") == "\\u009b2J");
    BOOST_TEST(terminal_safe("\xc2\x9d"
                             "0;t\xc2\x9c") == "\\u009d0;t\\u009c");
    BOOST_TEST(terminal_safe("\x9b"
                             "2J") == "\\x9b2J");
    BOOST_TEST(terminal_safe("\xc3\x28 \xed\xa0\x80 \xe2\x80") ==
               "\\xc3( \\xed\\xa0\\x80 \\xe2\\x80");
    BOOST_TEST(terminal_safe("\xc2\xa0nbsp") == "\xc2\xa0nbsp");
    // Idempotent: what it printed once it prints unchanged.
    auto once = terminal_safe("x\x1b]0;t\x07\r\xc2\x9b\xff");
    BOOST_TEST(terminal_safe(once) == once);
}

BOOST_AUTO_TEST_CASE(guest_text_is_escaped_in_the_timeline_and_progress_line) {
    timeline t;
    t.vm = "vm1";
    t.entries = {{"ssh-banner", 1.5, "SSH-2.0-x\x1b]0;pwned\x07\x1b[2J"}};
    auto table = render_timeline_table(t);
    BOOST_TEST(table.find('\x1b') == std::string::npos);
    BOOST_TEST(table.find("SSH-2.0-x\\x1b]0;pwned\\x07\\x1b[2J") != std::string::npos);
    auto line = status_line(1500ms, "booting\r", "login:\x1b[2K\x1b]0;pwned\x07", 200);
    BOOST_TEST(line == "[   1.5s] booting\\x0d | login:\\x1b[2K\\x1b]0;pwned\\x07");
}

// Issue 16 item 5: `list --json` (stable keys, one object per VM) and the table.
namespace {

std::vector<localvm::qemu::vm_listing> listing() {
    std::vector<localvm::qemu::vm_listing> vms;
    auto run = sample(true);
    run.st.monitor = true;
    run.st.state->accel_fallback = "no console output within 20 s";
    run.st.state->ports.push_back({"127.0.0.1", 40001, 8080});
    vms.push_back({"vm1", run.st, run.files});
    auto off = sample(false);
    off.st.state->ended_at = 1005;
    vms.push_back({"vm2", off.st, off.files});
    localvm::qemu::status fresh; // created, never started
    fresh.exists = true;
    vms.push_back({"vm3", fresh, off.files});
    return vms;
}

} // namespace

BOOST_AUTO_TEST_CASE(list_json) {
    auto text = render_list_json(listing(), 1012);
    BOOST_TEST(text.find('\n') == std::string::npos);
    auto root = json::parse(text).as_object();
    BOOST_TEST(root.size() == 1u);
    auto& vms = root.at("vms").as_array();
    BOOST_REQUIRE(vms.size() == 3u);
    for (const auto& v : vms) {
        std::vector<std::string> keys;
        for (const auto& kv : v.as_object())
            keys.emplace_back(kv.key());
        BOOST_TEST((keys == std::vector<std::string>{
                        "name", "state", "exists", "running", "pid", "accelerator",
                        "accelerator_fallback", "uptime_seconds", "ports", "monitor",
                        "monitor_socket", "last_end", "last_end_detail", "ended_at",
                        "stopped_by"}));
    }
    auto& a = vms[0].as_object();
    BOOST_TEST(a.at("name").as_string() == "vm1");
    BOOST_TEST(a.at("state").as_string() == "running");
    BOOST_TEST(a.at("running").as_bool());
    BOOST_TEST(a.at("pid").to_number<int>() == 4242);
    BOOST_TEST(a.at("accelerator").as_string() == "tcg");
    BOOST_TEST(a.at("accelerator_fallback").as_string() == "no console output within 20 s");
    BOOST_TEST(a.at("uptime_seconds").to_number<int>() == 12);
    BOOST_TEST(a.at("ports").as_array().size() == 2u);
    BOOST_TEST(a.at("ports").as_array()[1].as_object().at("guest_port").to_number<int>() == 8080);
    BOOST_TEST(a.at("monitor").as_bool());
    BOOST_TEST(a.at("monitor_socket").as_string() == "/r/vm1/monitor.sock");
    BOOST_TEST(a.at("ended_at").is_null());
    BOOST_TEST(a.at("stopped_by").is_null());
    auto& b = vms[1].as_object();
    BOOST_TEST(b.at("state").as_string() == "stopped");
    BOOST_TEST(!b.at("running").as_bool());
    BOOST_TEST(b.at("pid").is_null());
    BOOST_TEST(b.at("accelerator").is_null());
    BOOST_TEST(b.at("uptime_seconds").is_null());
    BOOST_TEST(b.at("ports").as_array().empty());
    BOOST_TEST(b.at("last_end").as_string() == "stopped");
    BOOST_TEST(b.at("ended_at").to_number<int>() == 1005);
    BOOST_TEST(b.at("stopped_by").as_string() == "powerdown");
    auto& c = vms[2].as_object();
    BOOST_TEST(c.at("last_end").as_string() == "none");
    BOOST_TEST(c.at("ended_at").is_null());
    BOOST_TEST(json::parse(render_list_json({}, 0)).as_object().at("vms").as_array().empty());
}

BOOST_AUTO_TEST_CASE(list_table) {
    auto t = render_list_table(listing(), 1012);
    BOOST_TEST(t ==
               "NAME  STATE    PID   ACCEL  UPTIME  FORWARDS                                   "
               "LAST END\n"
               "vm1   running  4242  tcg*   12s     127.0.0.1:40000->22,127.0.0.1:40001->8080  -\n"
               "vm2   stopped  -     -      -       -                                          "
               "stopped (powerdown)\n"
               "vm3   stopped  -     -      -       -                                          -\n",
               t);
    BOOST_TEST(render_list_table({}, 0) == "no VMs\n");
}

BOOST_AUTO_TEST_CASE(status_shows_the_nics) {
    auto r = sample(true);
    r.st.state->nics = {{"lan", "vnic0", "0e:01:02:03:04:05", "10.0.0.1/24", false}};
    auto v = json::parse(render_status_json(r)).as_object();
    auto& n = v.at("nics").as_array().at(0).as_object();
    BOOST_TEST(n.at("network").as_string() == "lan");
    BOOST_TEST(n.at("id").as_string() == "vnic0");
    BOOST_TEST(n.at("mac").as_string() == "0e:01:02:03:04:05");
    BOOST_TEST(n.at("address").as_string() == "10.0.0.1/24");
    BOOST_TEST(n.at("link").as_string() == "down");
    auto text = render_status_text(r);
    BOOST_TEST(text.find("network:  lan: vnic0 0e:01:02:03:04:05 10.0.0.1/24, link down\n") !=
                   std::string::npos,
               text);
    BOOST_TEST(json::parse(render_status_json(sample(false))).at("nics").as_array().empty());
}

BOOST_AUTO_TEST_CASE(network_list) {
    BOOST_TEST(render_network_list({}) == "no networks\n");
    localvm::qemu::network_status lan;
    lan.exists = true;
    lan.switch_pid = 77;
    lan.members.resize(2);
    lan.members[0].vm = "a";
    lan.members[0].address = "10.0.0.1/24";
    lan.members[0].running = true;
    lan.members[1].vm = "b";
    localvm::qemu::network_status empty;
    empty.exists = true;
    BOOST_TEST(render_network_list({{"lan", lan}, {"x", empty}}) ==
               "lan  switch pid 77  members: a 10.0.0.1/24 (running), b (stopped)\n"
               "x  switch stopped  members: none\n");
}
