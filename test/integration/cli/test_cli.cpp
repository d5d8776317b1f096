// The built localvm command without a guest: help and usage errors, failures
// on unknown VMs (exit 1, one line), create/status --json/delete with
// temporary XDG directories, `monitor` on a QEMU started without one (UEFI
// firmware, no OS), and cidata read back with isoinfo.
#define BOOST_TEST_MODULE cli_integration
#include <localvm/qemu/manager.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include "run_cli.hpp"

namespace json = boost::json;
using lvcli::run;
using lvcli::scratch;
using namespace std::chrono_literals;

namespace {

void check_one_error_line(const lvcli::outcome& r, const std::string& prefix) {
    BOOST_TEST(r.status == 1, "exit " << r.status << ", stderr: " << r.err);
    auto lines = r.err_lines();
    BOOST_TEST(lines.size() == 1u, r.err);
    if (!lines.empty())
        BOOST_TEST(lines[0].starts_with(prefix), lines[0]);
}

std::string isoinfo(std::vector<std::string> args) {
    args.insert(args.begin(), "isoinfo");
    auto r = lvcli::run_program(args);
    BOOST_TEST(r.status == 0, r.err);
    return r.out;
}

void write(const std::filesystem::path& p, const std::string& text) {
    std::ofstream(p, std::ios::binary) << text;
}

// Stops the VM `name` of `s` (if it runs) when the test ends, however it
// ends: through the library, since firmware without an OS ignores the ACPI
// power button and the command's `stop` would wait a minute for it.
struct stop_at_end {
    const scratch& s;
    std::string name;
    ~stop_at_end() {
        localvm::qemu::options o;
        o.name = name;
        o.data_dir = s.root / "data" / "localvm";
        o.runtime_dir = s.root / "run" / "localvm";
        o.stop.powerdown_timeout = 1s;
        try {
            localvm::testing::run_coroutine(
                [&]() -> boost::asio::awaitable<void> {
                    localvm::qemu::manager m(co_await boost::asio::this_coro::executor, o);
                    bool running = co_await m.running();
                    if (running)
                        co_await m.stop();
                },
                60s, "stop " + name);
        } catch (const std::exception& e) {
            BOOST_ERROR("stopping " << name << ": " << e.what());
        }
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(help_and_usage) {
    auto top = run({"--help"});
    BOOST_TEST(top.status == 0);
    BOOST_TEST(top.out.starts_with("usage: localvm COMMAND"));
    const std::vector<std::string> commands = {"create", "start",   "up",      "status",
                                               "shell",  "console", "monitor", "sync",
                                               "stop",   "delete",  "cidata"};
    for (const auto& c : commands) {
        auto r = run({c, "--help"});
        BOOST_TEST(r.status == 0, c);
        BOOST_TEST(r.out.starts_with("usage: localvm " + c), c << ": " << r.out);
        BOOST_TEST(r.err.empty(), c);
    }
    auto none = run({});
    BOOST_TEST(none.status == 2);
    BOOST_TEST(none.err.starts_with("localvm: missing command\n"), none.err);
    auto opt = run({"start", "vm1", "--cpus", "many"});
    BOOST_TEST(opt.status == 2);
    BOOST_TEST(opt.err == "localvm: start: --cpus: expected 1..255, got \"many\"\n"
                          "Try 'localvm start --help'.\n");
    BOOST_TEST(opt.out.empty());
    auto cmd = run({"launch"});
    BOOST_TEST(cmd.status == 2);
    auto ver = run({"--version"});
    BOOST_TEST(ver.status == 0);
    BOOST_TEST(ver.out.starts_with("localvm "));
}

BOOST_AUTO_TEST_CASE(unknown_vm_fails_with_one_line) {
    scratch s;
    auto env = s.env();
    check_one_error_line(run({"status", "nosuch"}, env), "localvm: status nosuch: ");
    check_one_error_line(run({"status", "nosuch", "--json"}, env),
                         "localvm: status nosuch: VM nosuch does not exist");
    check_one_error_line(run({"stop", "nosuch"}, env),
                         "localvm: stop nosuch: VM nosuch is not running");
    check_one_error_line(run({"shell", "nosuch", "--", "true"}, env), "localvm: shell nosuch: ");
    check_one_error_line(run({"sync", "nosuch", ".", "/tmp"}, env), "localvm: sync nosuch: ");
    check_one_error_line(run({"console", "nosuch"}, env), "localvm: console nosuch: ");
    check_one_error_line(run({"monitor", "nosuch"}, env),
                         "localvm: monitor nosuch: VM nosuch is not running");
    check_one_error_line(run({"delete", "nosuch"}, env),
                         "localvm: delete nosuch: VM nosuch does not exist");
    check_one_error_line(run({"up", "nosuch"}, env),
                         "localvm: up nosuch: VM nosuch does not exist; give --base");
    check_one_error_line(run({"create", "nosuch", "--base", "/nonexistent.qcow2"}, env),
                         "localvm: create nosuch: base image /nonexistent.qcow2 does not exist");
}

BOOST_AUTO_TEST_CASE(start_or_up_of_an_unknown_vm_makes_nothing) {
    scratch s;
    auto env = s.env();
    check_one_error_line(run({"start", "nosuch"}, env),
                         "localvm: start nosuch: VM nosuch does not exist");
    check_one_error_line(run({"up", "nosuch"}, env),
                         "localvm: up nosuch: VM nosuch does not exist");
    // No key pair, no runtime directory, nothing at all.
    for (const auto& e : std::filesystem::recursive_directory_iterator(s.root))
        BOOST_TEST(e.is_directory(), "left behind: " << e.path());
    BOOST_TEST(!std::filesystem::exists(s.root / "data" / "localvm" / "nosuch"));
    BOOST_TEST(!std::filesystem::exists(s.root / "run" / "localvm" / "nosuch"));
}

BOOST_AUTO_TEST_CASE(create_status_delete_in_xdg_dirs) {
    scratch s;
    auto base = lvcli::make_base_image(s);
    auto env = s.env();

    auto created = run({"create", "vm1", "--base", base.string()}, env);
    BOOST_TEST(created.status == 0, created.err);
    BOOST_TEST(std::filesystem::exists(s.root / "data" / "localvm" / "vm1" / "disk.qcow2"));
    auto again = run({"create", "vm1", "--base", base.string()}, env);
    BOOST_TEST(again.status == 1);
    BOOST_TEST(again.err.find("already exists") != std::string::npos, again.err);

    auto st = run({"status", "vm1", "--json"}, env);
    BOOST_TEST(st.status == 0, st.err);
    auto v = json::parse(st.out).as_object();
    BOOST_TEST(v.at("name").as_string() == "vm1");
    BOOST_TEST(v.at("state").as_string() == "stopped");
    BOOST_TEST(v.at("pid").is_null());
    BOOST_TEST(v.at("accelerator").is_null());
    BOOST_TEST(v.at("uptime_seconds").is_null());
    BOOST_TEST(v.at("ports").as_array().empty());
    auto& paths = v.at("paths").as_object();
    BOOST_TEST(paths.at("data").as_string() == (s.root / "data" / "localvm" / "vm1").string());
    BOOST_TEST(paths.at("runtime").as_string() == (s.root / "run" / "localvm" / "vm1").string());
    BOOST_TEST(paths.at("identity").as_string() ==
               (s.root / "data" / "localvm" / "vm1" / "id_ed25519").string());

    // Options override the XDG directories.
    auto other = s.root / "elsewhere";
    auto st2 = run({"status", "vm1", "--json", "--data-dir", other.string()}, env);
    BOOST_TEST(st2.status == 1);

    auto text = run({"status", "vm1"}, env);
    BOOST_TEST(text.status == 0);
    BOOST_TEST(text.out.find("state:    stopped") != std::string::npos, text.out);

    auto del = run({"delete", "vm1"}, env);
    BOOST_TEST(del.status == 0, del.err);
    BOOST_TEST(!std::filesystem::exists(s.root / "data" / "localvm" / "vm1"));
    auto gone = run({"status", "vm1"}, env);
    BOOST_TEST(gone.status == 1);
}

// network create|list|delete, and a start on a network that does not exist
// (refused before QEMU runs, nothing made).
BOOST_AUTO_TEST_CASE(networks_create_list_delete) {
    scratch s;
    auto env = s.env();
    auto none = run({"network", "list"}, env);
    BOOST_TEST(none.status == 0, none.err);
    BOOST_TEST(none.out == "no networks\n");
    auto created = run({"network", "create", "lan"}, env);
    BOOST_TEST(created.status == 0, created.err);
    BOOST_TEST(std::filesystem::exists(s.root / "data" / "localvm" / "@networks" / "lan" /
                                       "network.json"));
    check_one_error_line(run({"network", "create", "lan"}, env),
                         "localvm: network create lan: network lan already exists");
    auto listed = run({"network", "list"}, env);
    BOOST_TEST(listed.out == "lan  switch stopped  members: none\n", listed.out);

    auto base = lvcli::make_base_image(s);
    BOOST_TEST(run({"create", "vm1", "--base", base.string()}, env).status == 0);
    auto start = run({"start", "vm1", "--network", "nowhere=10.1.0.1/24", "--accel", "tcg",
                      "--kernel", base.string()},
                     env);
    BOOST_TEST(start.status == 1, start.err);
    BOOST_TEST(start.err.find("network nowhere does not exist") != std::string::npos, start.err);
    BOOST_TEST(!std::filesystem::exists(s.root / "run" / "localvm" / "vm1" / "qemu.pid"));
    BOOST_TEST(run({"network", "list"}, env).out == "lan  switch stopped  members: none\n");
    BOOST_TEST(run({"delete", "vm1"}, env).status == 0);

    auto del = run({"network", "delete", "lan"}, env);
    BOOST_TEST(del.status == 0, del.err);
    BOOST_TEST(!std::filesystem::exists(s.root / "data" / "localvm" / "@networks" / "lan"));
    BOOST_TEST(run({"network", "list"}, env).out == "no networks\n");
    check_one_error_line(run({"network", "delete", "lan"}, env),
                         "localvm: network delete lan: network lan does not exist");
}

BOOST_AUTO_TEST_CASE(monitor_needs_a_vm_started_with_monitor) {
    scratch s;
    auto base = lvcli::make_base_image(s);
    auto env = s.env();
    auto created = run({"create", "vm1", "--base", base.string()}, env);
    BOOST_REQUIRE_MESSAGE(created.status == 0, created.err);

    // Created, not running: the library's message.
    check_one_error_line(run({"monitor", "vm1"}, env),
                         "localvm: monitor vm1: VM vm1 is not running");

    // Running without --monitor: the fix is named.
    stop_at_end stopper{s, "vm1"};
    auto started = run({"start", "vm1", "--accel", "tcg", "--net", "restricted", "--cpus", "1",
                        "--memory", "128M"},
                       env);
    BOOST_REQUIRE_MESSAGE(started.status == 0, started.err);
    BOOST_TEST(started.err.find("monitor") == std::string::npos, started.err);
    auto mon = run({"monitor", "vm1"}, env);
    check_one_error_line(mon, "localvm: monitor vm1: VM vm1 has no monitor");
    BOOST_TEST(mon.err.find("start it with --monitor") != std::string::npos, mon.err);

    auto st = run({"status", "vm1", "--json"}, env);
    BOOST_TEST(st.status == 0, st.err);
    auto v = json::parse(st.out).as_object();
    BOOST_TEST(v.at("state").as_string() == "running");
    BOOST_TEST(v.at("monitor_socket").is_null());
    auto text = run({"status", "vm1"}, env);
    BOOST_TEST(text.out.find("monitor:  none") != std::string::npos, text.out);
}

BOOST_AUTO_TEST_CASE(cidata_reads_back_with_isoinfo) {
    scratch s;
    write(s.root / "user-data", "#cloud-config\npassword: secret\n");
    write(s.root / "net", "version: 2\n");
    write(s.root / "key.pub", "# a comment\nssh-ed25519 AAAAC3Nza k@h\n");
    auto iso = s.root / "seed.iso";
    auto r = run({"cidata", iso.string(), (s.root / "user-data").string(), "--hostname", "vm1",
                  "--ssh-key", (s.root / "key.pub").string(), "--network-config",
                  (s.root / "net").string()});
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(r.err.empty(), r.err);

    auto pvd = isoinfo({"-d", "-i", iso.string()});
    BOOST_TEST(pvd.find("Volume id: cidata") != std::string::npos, pvd);
    auto ud = isoinfo({"-R", "-i", iso.string(), "-x", "/user-data"});
    BOOST_TEST(ud == "#cloud-config\npassword: secret\n");
    auto md = isoinfo({"-J", "-i", iso.string(), "-x", "/meta-data"});
    BOOST_TEST(md == "instance-id: \"iid-local01\"\nlocal-hostname: \"vm1\"\npublic-keys:\n"
                     "  - \"ssh-ed25519 AAAAC3Nza k@h\"\n");
    auto nc = isoinfo({"-R", "-i", iso.string(), "-x", "/network-config"});
    BOOST_TEST(nc == "version: 2\n");

    // meta-data given verbatim, no user-data file: an empty user-data.
    write(s.root / "md", "instance-id: mine\n");
    auto iso2 = s.root / "seed2.iso";
    auto r2 =
        run({"cidata", iso2.string(), (s.root / "user-data").string(), (s.root / "md").string()});
    BOOST_TEST(r2.status == 0, r2.err);
    auto md2 = isoinfo({"-R", "-i", iso2.string(), "-x", "/meta-data"});
    BOOST_TEST(md2 == "instance-id: mine\n");

    auto missing = run({"cidata", (s.root / "x.iso").string(), "/nonexistent-ud"});
    check_one_error_line(missing, "localvm: cidata " + (s.root / "x.iso").string() +
                                      ": cannot read user-data file /nonexistent-ud");
    BOOST_TEST(!std::filesystem::exists(s.root / "x.iso"));
}
