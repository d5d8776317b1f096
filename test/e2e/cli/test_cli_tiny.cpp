// The localvm command against the tiny guest, on one boot: up (create,
// start with an HMP monitor, wait for SSH, run a command, timeline), status
// --json, the monitor typed into through a pty, shell, sync, console, up
// again on the running VM, stop, delete; and stop --timeout on a guest that
// ignores the power button. TCG and restricted networking;
// temporary XDG directories.
#define BOOST_TEST_MODULE cli_e2e
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>


#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../integration/cli/run_cli.hpp"
#include "../qemu/guest.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;
using lvcli::run;
using namespace std::chrono_literals;

namespace {

// A listening socket on 127.0.0.1 (a host port some other program holds).
struct lvtest_listener {
    int fd = -1;
    std::uint16_t port = 0;
    lvtest_listener() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(fd, 1) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            throw std::runtime_error("cannot listen on 127.0.0.1");
        port = ntohs(a.sin_port);
    }
    ~lvtest_listener() { ::close(fd); }
    lvtest_listener(const lvtest_listener&) = delete;
    lvtest_listener& operator=(const lvtest_listener&) = delete;
};

int connect_to(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool refused(std::uint16_t port) {
    int fd = connect_to(port);
    if (fd >= 0)
        ::close(fd);
    return fd < 0;
}

// What one connection to 127.0.0.1:port reads until EOF.
std::string fetch(std::uint16_t port) {
    std::string got;
    if (int fd = connect_to(port); fd >= 0) {
        char buf[256];
        for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
            got.append(buf, static_cast<std::size_t>(n));
        ::close(fd);
    }
    return got;
}

} // namespace

BOOST_AUTO_TEST_CASE(lifecycle_on_one_boot) {
    auto g = lve2e::load_guest("tiny");
    lvcli::scratch s;
    auto env = s.env();
    auto base = lvcli::make_base_image(s);
    lvcli::stop_at_exit guard{"tiny", env};
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

    // Issue 16 item 3: guest -> host with excludes (sync --from-guest), and
    // cp in both directions; a guest path that does not exist is one clear line.
    auto made = run({"shell", "tiny", "--", "mkdir", "-p", "/tmp/out/keep", "/tmp/out/skip", "&&",
                     "echo", "kept", ">", "/tmp/out/keep/a.txt", "&&", "echo", "no", ">",
                     "/tmp/out/skip/b.txt", "&&", "echo", "log", ">", "/tmp/out/c.log"},
                    env);
    BOOST_TEST(made.status == 0, made.err);
    auto back = s.root / "back";
    auto pulled = run({"sync", "tiny", "/tmp/out/", back.string(), "--from-guest", "--exclude",
                       "skip/", "--exclude", "*.log"},
                      env);
    BOOST_TEST(pulled.status == 0, pulled.err);
    BOOST_TEST(lvcli::slurp(back / "keep" / "a.txt") == "kept\n");
    BOOST_TEST(!fs::exists(back / "skip"));
    BOOST_TEST(!fs::exists(back / "c.log"));

    auto cp_in = run({"cp", (folder / "sub" / "hello.txt").string(), "tiny:/tmp/cp-in.txt"}, env);
    BOOST_TEST(cp_in.status == 0, cp_in.err);
    auto cp_cat = run({"shell", "tiny", "--", "cat", "/tmp/cp-in.txt"}, env);
    BOOST_TEST(cp_cat.out == "hello from the host\n");
    auto cp_out = run({"cp", "tiny:/tmp/cp-in.txt", (s.root / "cp-out.txt").string()}, env);
    BOOST_TEST(cp_out.status == 0, cp_out.err);
    BOOST_TEST(lvcli::slurp(s.root / "cp-out.txt") == "hello from the host\n");
    auto no_such = run({"cp", "tiny:/no/such/file", (s.root / "nothing").string()}, env);
    BOOST_TEST(no_such.status == 1);
    BOOST_TEST(no_such.err_lines().size() == 1u, no_such.err);
    BOOST_TEST(no_such.err.find("the guest path /no/such/file does not exist") != std::string::npos,
               no_such.err);
    BOOST_TEST(!fs::exists(s.root / "nothing"));
    auto both = run({"cp", "tiny:/a", "tiny:/b"}, env);
    BOOST_TEST(both.status == 2, both.err);

    // Issue 16 item 4: a forward added at run time reaches a server in the
    // guest (busybox nc answering every connection), shows in status, ports
    // and list from other processes, and is gone after removal.
    auto server = run({"shell", "tiny", "--",
                       "setsid busybox nc -ll -p 8080 -e echo hello-from-guest "
                       "</dev/null >/dev/null 2>&1 & "
                       // Returns once the guest listens on 8080 (hex 1F90):
                       // slirp answers a connect before that with EOF.
                       "timeout 30 sh -c 'until grep -qs \":1F90 0*:0000 0A\" "
                       "/proc/net/tcp /proc/net/tcp6; do :; done'"},
                      env);
    BOOST_TEST(server.status == 0, server.err);
    auto added = run({"forward", "tiny", "0:8080"}, env);
    BOOST_REQUIRE_MESSAGE(added.status == 0, added.err);
    const std::string prefix = "127.0.0.1:";
    BOOST_REQUIRE(added.out.starts_with(prefix));
    const auto port = static_cast<std::uint16_t>(std::stoi(added.out.substr(prefix.size())));
    BOOST_TEST(added.out == prefix + std::to_string(port) + " -> 8080\n");
    BOOST_TEST(fetch(port) == "hello-from-guest\n");
    auto shown = run({"forward", "tiny"}, env);
    BOOST_TEST(shown.out.find(added.out) != std::string::npos, shown.out);
    auto with_fwd = json::parse(run({"status", "tiny", "--json"}, env).out).as_object();
    BOOST_TEST(with_fwd.at("ports").as_array().size() == 2u);

    // A host port that is taken: a clear error, and nothing recorded.
    {
        lvtest_listener taken;
        auto busy_port = run({"forward", "tiny", std::to_string(taken.port) + ":8080"}, env);
        BOOST_TEST(busy_port.status == 1);
        BOOST_TEST(busy_port.err_lines().size() == 1u, busy_port.err);
        BOOST_TEST(busy_port.err.find("in use") != std::string::npos, busy_port.err);
        auto after = run({"forward", "tiny"}, env);
        BOOST_TEST(after.out == shown.out);
    }
    auto twice = run({"forward", "tiny", std::to_string(port) + ":8080"}, env);
    BOOST_TEST(twice.status == 1);
    BOOST_TEST(twice.err.find("is forwarded already") != std::string::npos, twice.err);
    auto bad_spec = run({"forward", "tiny", "localhost:1:2"}, env);
    BOOST_TEST(bad_spec.status == 2, bad_spec.err);

    // Issue 16 item 5: list --json, parsed.
    auto listed = run({"list", "--json"}, env);
    BOOST_TEST(listed.status == 0, listed.err);
    auto vms = json::parse(listed.out).as_object().at("vms").as_array();
    BOOST_REQUIRE(vms.size() == 1u);
    auto& me = vms[0].as_object();
    BOOST_TEST(me.at("name").as_string() == "tiny");
    BOOST_TEST(me.at("state").as_string() == "running");
    BOOST_TEST(me.at("running").as_bool());
    BOOST_TEST(me.at("pid").to_number<int>() == v.at("pid").to_number<int>());
    BOOST_TEST(me.at("accelerator").as_string() == "tcg");
    BOOST_TEST(me.at("monitor").as_bool());
    BOOST_TEST(me.at("ports").as_array().size() == 2u);
    auto table = run({"list"}, env);
    BOOST_TEST(table.out.find("\ntiny  running  ") != std::string::npos, table.out);

    auto removed = run({"forward", "tiny", "--remove", std::to_string(port) + ":8080"}, env);
    BOOST_TEST(removed.status == 0, removed.err);
    BOOST_TEST(refused(port), "the forward still listens after --remove");
    auto again_rm = run({"forward", "tiny", "--remove", std::to_string(port) + ":8080"}, env);
    BOOST_TEST(again_rm.status == 1);
    BOOST_TEST(again_rm.err.find("has no forward from") != std::string::npos, again_rm.err);
    auto without = json::parse(run({"status", "tiny", "--json"}, env).out).as_object();
    BOOST_TEST(without.at("ports").as_array().size() == 1u);

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

// stop --timeout is the power button's window: a guest that ignores the button
// (localvm.noacpi=1) goes on to the next steps once that window is over, not
// after the library's default 60 s.
BOOST_AUTO_TEST_CASE(stop_timeout_bounds_the_power_button) {
    auto g = lve2e::load_guest("tiny");
    lvcli::scratch s;
    auto env = s.env();
    auto base = lvcli::make_base_image(s);
    lvcli::stop_at_exit guard{"deaf", env};
    auto up = run({"up", "deaf", "-q", "--base", base.string(), "--kernel", g["KERNEL"], "--initrd",
                   g["INITRD"], "--cmdline", g["CMDLINE"] + " localvm.noacpi=1", "--memory",
                   "512M", "--accel", "tcg", "--net", "restricted"},
                  env);
    BOOST_REQUIRE_MESSAGE(up.status == 0, "up failed: " << up.err);

    BOOST_TEST(run({"stop", "deaf", "--timeout", "abc"}, env).status == 2);
    auto stop = run({"stop", "deaf", "-v", "--timeout", "2"}, env);
    BOOST_TEST(stop.status == 0, stop.err);
    // (then the guest agent's turn, which the tiny guest has not got, then quit)
    BOOST_TEST(stop.err.find("the guest did not power off within 2000 ms;") != std::string::npos,
               stop.err);
    auto st = json::parse(run({"status", "deaf", "--json"}, env).out).as_object();
    BOOST_TEST(st.at("state").as_string() == "stopped");
    BOOST_TEST(st.at("stopped_by").as_string() == "quit");
    BOOST_TEST(run({"delete", "deaf"}, env).status == 0);
}
