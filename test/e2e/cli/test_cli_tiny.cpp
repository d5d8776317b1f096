// The localvm command against the tiny guest, on one boot: up (create,
// start with an HMP monitor, wait for SSH, run a command, timeline), status
// --json, the monitor typed into through a pty, shell, sync, console, up
// again on the running VM, stop, delete. TCG and restricted networking;
// temporary XDG directories.
#define BOOST_TEST_MODULE cli_e2e
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include "../../integration/cli/run_cli.hpp"
#include "../qemu/guest.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;
using lvcli::run;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_CASE(lifecycle_on_one_boot) {
    auto g = lve2e::load_guest("tiny");
    lvcli::scratch s;
    auto env = s.env();
    auto base = lvcli::make_base_image(s);
    auto timeline = s.root / "timeline.json";

    auto up = run({"up",        "tiny",     "--base",     base.string(), "--kernel",
                   g["KERNEL"], "--initrd", g["INITRD"],  "--cmdline",   g["CMDLINE"],
                   "--cpus",    "1",        "--memory",   "512M",        "--accel",
                   "tcg",       "--net",    "restricted", "--timeline",  timeline.string(),
                   "--monitor", "--",       "uname",      "-a"},
                  env);
    BOOST_TEST_MESSAGE("up stderr:\n" << up.err);
    BOOST_REQUIRE_MESSAGE(up.status == 0, "up failed: " << up.err);
    BOOST_TEST(up.out.starts_with("Linux tiny "), up.out);
    BOOST_TEST(up.err.find("boot timeline of tiny:") != std::string::npos, up.err);
    // Not a terminal: plain stage lines, no carriage returns.
    BOOST_TEST(up.err.find('\r') == std::string::npos);
    BOOST_TEST(up.err.find("ssh-banner SSH-2.0-") != std::string::npos, up.err);

    auto t = json::parse(lvcli::slurp(timeline)).as_object();
    BOOST_TEST(t.at("vm").as_string() == "tiny");
    std::vector<std::string> stages;
    double last = 0;
    for (const auto& e : t.at("stages").as_array()) {
        stages.emplace_back(e.as_object().at("stage").as_string());
        double at = e.as_object().at("seconds").to_number<double>();
        BOOST_TEST(at >= last);
        last = at;
    }
    BOOST_TEST((stages == std::vector<std::string>{"qemu-spawned", "qmp-ready", "guest-running",
                                                   "console-output", "ssh-banner", "ssh-login"}));

    auto st = run({"status", "tiny", "--json"}, env);
    BOOST_TEST(st.status == 0, st.err);
    auto v = json::parse(st.out).as_object();
    BOOST_TEST(v.at("state").as_string() == "running");
    BOOST_TEST(v.at("pid").to_number<int>() > 0);
    BOOST_TEST(v.at("accelerator").as_string() == "tcg");
    BOOST_TEST(v.at("uptime_seconds").to_number<int>() >= 0);
    auto& fwd = v.at("ports").as_array().at(0).as_object();
    BOOST_TEST(fwd.at("host_address").as_string() == "127.0.0.1");
    BOOST_TEST(fwd.at("host_port").to_number<int>() > 0);
    BOOST_TEST(fwd.at("guest_port").to_number<int>() == 22);

    // up --monitor gave QEMU a human monitor; status names its socket.
    const auto monitor_socket = s.root / "run" / "localvm" / "tiny" / "monitor.sock";
    BOOST_TEST(v.at("monitor_socket").as_string() == monitor_socket.string());
    auto st_text = run({"status", "tiny"}, env);
    BOOST_TEST(st_text.out.find("monitor:  " + monitor_socket.string()) != std::string::npos,
               st_text.out);

    // `localvm monitor` on a terminal: the hint, QEMU's prompt, an answer to
    // `info status`; Ctrl-] detaches (exit 0) and restores the terminal.
    {
        lvtest::pty term;
        const auto cooked = term.modes();
        std::string seen;
        bool answered = false;
        auto user = [&](asio::posix::stream_descriptor& master) -> asio::awaitable<void> {
            answered = co_await lvtest::read_until(master, seen, "(qemu) ", 60s);
            if (answered) {
                co_await lvtest::type(master, "info status\r");
                answered = co_await lvtest::read_until(master, seen, "VM status: running", 60s);
            }
            co_await lvtest::type(master, "\x1d");
        };
        auto mon = lvcli::run_on_terminal({"monitor", "tiny"}, env, term, user, 120s);
        BOOST_TEST(answered, "the terminal showed: " << seen);
        BOOST_TEST(mon.status == 0, mon.err);
        BOOST_TEST(mon.err.empty(), mon.err);
        BOOST_TEST(seen.find("Connected to the QEMU monitor of tiny; Ctrl-] detaches.") !=
                       std::string::npos,
                   seen);
        BOOST_TEST(lvtest::same_modes(cooked, term.modes()), "the terminal was not restored");
    }

    auto code =
        run({"shell", "tiny", "--", "echo", "out;", "echo", "err", ">&2;", "exit", "3"}, env);
    BOOST_TEST(code.status == 3, code.err);
    BOOST_TEST(code.out == "out\n");
    BOOST_TEST(code.err == "err\n");

    auto folder = s.root / "folder";
    fs::create_directories(folder / "sub");
    std::ofstream(folder / "sub" / "hello.txt") << "hello from the host\n";
    auto sync = run({"sync", "tiny", folder.string() + "/", "/tmp/synced"}, env);
    BOOST_TEST(sync.status == 0, sync.err);
    auto cat = run({"shell", "tiny", "--", "cat", "/tmp/synced/sub/hello.txt"}, env);
    BOOST_TEST(cat.status == 0, cat.err);
    BOOST_TEST(cat.out == "hello from the host\n");

    auto failed = run({"sync", "tiny", (s.root / "no-such-folder").string() + "/", "/tmp/x"}, env);
    BOOST_TEST(failed.status == 1);
    BOOST_TEST(failed.err_lines().size() == 1u, failed.err);
    BOOST_TEST(failed.err.starts_with("localvm: sync tiny: rsync "), failed.err);

    // stdin is /dev/null: the console attaches and ends at once.
    auto con = run({"console", "tiny"}, env);
    BOOST_TEST(con.status == 0, con.err);

    // up on a running VM only waits for SSH.
    auto again = run({"up", "tiny", "-q", "--", "true"}, env);
    BOOST_TEST(again.status == 0, again.err);
    BOOST_TEST(again.err.empty(), again.err);

    auto busy = run({"delete", "tiny"}, env);
    BOOST_TEST(busy.status == 1);
    BOOST_TEST(busy.err_lines().size() == 1u, busy.err);

    auto stop = run({"stop", "tiny"}, env);
    BOOST_TEST(stop.status == 0, stop.err);
    auto stopped = run({"status", "tiny", "--json"}, env);
    auto sv = json::parse(stopped.out).as_object();
    BOOST_TEST(sv.at("state").as_string() == "stopped");
    BOOST_TEST(sv.at("last_end").as_string() == "stopped");
    auto stop2 = run({"stop", "tiny"}, env);
    BOOST_TEST(stop2.status == 1);

    auto del = run({"delete", "tiny"}, env);
    BOOST_TEST(del.status == 0, del.err);
    auto gone = run({"status", "tiny"}, env);
    BOOST_TEST(gone.status == 1);
}
