// The localvm command line: every subcommand parses, bad usage is a usage
// error naming the problem, defaults come from the library.
#define BOOST_TEST_MODULE cli_parse
#include <localvm/error.hpp>
#include <localvm/qemu/options.hpp>

#include <boost/test/unit_test.hpp>

#include <initializer_list>

#include "cli.hpp"

using namespace localvm::cli;
using localvm::qemu::accelerator;
using localvm::qemu::network;

namespace {

std::variant<invocation, usage_error> run(std::initializer_list<const char*> words) {
    std::vector<std::string> args(words.begin(), words.end());
    return parse(args);
}

invocation ok(std::initializer_list<const char*> words) {
    auto r = run(words);
    if (auto* e = std::get_if<usage_error>(&r))
        BOOST_FAIL("usage error: " << e->message);
    return std::get<invocation>(r);
}

std::string bad(std::initializer_list<const char*> words) {
    auto r = run(words);
    if (std::holds_alternative<invocation>(r)) {
        BOOST_ERROR("parsed, but a usage error was expected");
        return {};
    }
    return std::get<usage_error>(r).message;
}

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_CASE(no_arguments_is_usage) {
    BOOST_TEST(bad({}) == "missing command");
    BOOST_TEST(contains(bad({"frobnicate"}), "unknown command \"frobnicate\""));
    BOOST_TEST(contains(bad({"--frob"}), "unknown option \"--frob\""));
}

BOOST_AUTO_TEST_CASE(help_everywhere) {
    BOOST_TEST(ok({"--help"}).help);
    BOOST_TEST((ok({"--help"}).cmd == command::usage));
    BOOST_TEST((ok({"help", "up"}).cmd == command::up));
    BOOST_TEST((ok({"--version"}).cmd == command::version));
    for (auto word : {"create", "start", "up", "status", "shell", "console", "monitor", "sync",
                      "cp", "forward", "list", "stop", "delete", "cidata"}) {
        BOOST_TEST_CONTEXT(word) {
            // --help needs no operands and wins over anything missing.
            auto i = ok({word, "--help"});
            BOOST_TEST(i.help);
            BOOST_TEST(command_word(i.cmd) == word);
            BOOST_TEST(ok({word, "-h"}).help);
            auto text = help_text(i.cmd);
            BOOST_TEST(text.starts_with("usage: localvm " + std::string(word)));
            BOOST_TEST(contains(text, "--help"));
        }
    }
    BOOST_TEST(contains(help_text(command::usage), "cidata"));
    BOOST_TEST(contains(help_text(command::usage),
                        "\n  monitor   Attach the terminal to the VM's QEMU monitor"));
}

BOOST_AUTO_TEST_CASE(monitor) {
    // --monitor gives a starting VM the HMP monitor; `monitor NAME` attaches to it.
    BOOST_TEST(ok({"start", "vm1", "--monitor"}).monitor);
    BOOST_TEST(ok({"up", "vm1", "--monitor", "--", "true"}).monitor);
    BOOST_TEST(!ok({"start", "vm1"}).monitor);
    BOOST_TEST(bad({"start", "vm1", "--monitor=yes"}) == "start: --monitor takes no value");
    for (auto word :
         {"create", "status", "shell", "console", "monitor", "sync", "stop", "delete"}) {
        BOOST_TEST_CONTEXT(word) {
            auto message = bad({word, "vm1", "--monitor"});
            BOOST_TEST(message == std::string(word) + ": unknown option \"--monitor\"");
        }
    }
    BOOST_TEST(bad({"cidata", "o.iso", "--monitor"}) == "cidata: unknown option \"--monitor\"");

    auto m = ok({"monitor", "vm1", "--runtime-dir", "/r"});
    BOOST_TEST((m.cmd == command::monitor));
    BOOST_TEST(m.name == "vm1");
    BOOST_TEST(m.runtime_dir == "/r");
    BOOST_TEST(command_word(command::monitor) == "monitor");
    BOOST_TEST(bad({"monitor"}) == "monitor: missing NAME");
    BOOST_TEST(bad({"monitor", "vm1", "x"}) == "monitor: unexpected argument \"x\"");
    BOOST_TEST(contains(bad({"monitor", "vm1", "--", "info", "status"}), "only for shell and up"));

    // The help says what the monitor is and how to reach it.
    for (auto c : {command::start, command::up}) {
        auto text = help_text(c);
        BOOST_TEST(contains(text, "--monitor "), text);
        BOOST_TEST(contains(text, "'localvm monitor NAME' attaches"), text);
    }
    BOOST_TEST(!contains(help_text(command::status), "--monitor"));
    auto text = help_text(command::monitor);
    BOOST_TEST(text.starts_with("usage: localvm monitor NAME [OPTIONS]\n"), text);
    BOOST_TEST(contains(text, "Ctrl-] detaches"), text);
    BOOST_TEST(contains(text, "started with --monitor"), text);
}

BOOST_AUTO_TEST_CASE(help_shows_library_defaults) {
    auto text = help_text(command::up);
    localvm::start_options s;
    localvm::qemu::options o;
    BOOST_TEST(contains(text, "Default " + std::to_string(s.cpus) + "."));
    BOOST_TEST(contains(text, "Default " + s.memory + "."));
    BOOST_TEST(contains(text, "Default " + o.ssh_user + "."));
    BOOST_TEST(contains(text, "--timeline FILE"));
}

BOOST_AUTO_TEST_CASE(up_with_everything) {
    auto i = ok({"up",
                 "vm1",
                 "--base",
                 "b.qcow2",
                 "--kernel=k",
                 "--initrd",
                 "i",
                 "--cmdline",
                 "quiet -- x",
                 "--cpus",
                 "1",
                 "--memory",
                 "512M",
                 "--forward",
                 "2222:22",
                 "--forward",
                 "10.0.0.1:0:80",
                 "--accel",
                 "tcg",
                 "--net",
                 "restricted",
                 "--identity",
                 "id",
                 "--user",
                 "root",
                 "--timeout",
                 "30",
                 "--timeline",
                 "t.json",
                 "-q",
                 "--data-dir",
                 "/d",
                 "--runtime-dir",
                 "/r",
                 "--",
                 "uname",
                 "-a"});
    BOOST_TEST((i.cmd == command::up));
    BOOST_TEST(i.name == "vm1");
    BOOST_TEST(i.base == "b.qcow2");
    BOOST_TEST(i.kernel == "k");
    BOOST_TEST(i.initrd == "i");
    BOOST_TEST(i.cmdline == "quiet -- x");
    BOOST_TEST(*i.cpus == 1u);
    BOOST_TEST(i.memory == "512M");
    BOOST_REQUIRE(i.forwards.size() == 2u);
    BOOST_TEST(i.forwards[0].host_address == "127.0.0.1");
    BOOST_TEST(i.forwards[0].host_port == 2222);
    BOOST_TEST(i.forwards[1].host_address == "10.0.0.1");
    BOOST_TEST(i.forwards[1].guest_port == 80);
    BOOST_TEST((*i.accel == accelerator::tcg));
    BOOST_TEST((*i.net == network::restricted));
    BOOST_TEST(i.identity == "id");
    BOOST_TEST(i.user == "root");
    BOOST_TEST(i.timeout.count() == 30);
    BOOST_TEST(i.timeline_file == "t.json");
    BOOST_TEST((i.level == verbosity::quiet));
    BOOST_TEST(i.data_dir == "/d");
    BOOST_TEST(i.runtime_dir == "/r");
    BOOST_TEST((i.remote_command == std::vector<std::string>{"uname", "-a"}));
    BOOST_TEST(joined_command(i.remote_command) == "uname -a");
}

BOOST_AUTO_TEST_CASE(defaults_are_unset) {
    auto i = ok({"start", "vm1"});
    BOOST_TEST(!i.cpus);
    BOOST_TEST(i.memory.empty());
    BOOST_TEST(!i.accel);
    BOOST_TEST(!i.net);
    BOOST_TEST(i.forwards.empty());
    BOOST_TEST(i.identity.empty());
    BOOST_TEST(i.data_dir.empty());
    BOOST_TEST((i.level == verbosity::normal));
    BOOST_TEST((ok({"start", "vm1", "--accel", "auto"}).accel == accelerator::automatic));
    BOOST_TEST((ok({"stop", "-v", "vm1"}).level == verbosity::verbose));
    BOOST_TEST(!ok({"stop", "vm1"}).powerdown_timeout);
}

// --timeout means the SSH wait for up and the power button's window for stop.
BOOST_AUTO_TEST_CASE(timeout_is_per_command) {
    auto stop = ok({"stop", "vm1", "--timeout", "120"});
    BOOST_REQUIRE(stop.powerdown_timeout);
    BOOST_TEST(stop.powerdown_timeout->count() == 120);
    BOOST_TEST(stop.timeout.count() == 300); // up's, untouched
    auto up = ok({"up", "vm1", "--timeout", "30"});
    BOOST_TEST(!up.powerdown_timeout);
    BOOST_TEST(bad({"stop", "vm1", "--timeout", "0"}) ==
               "stop: --timeout: expected 1..86400 seconds, got \"0\"");
    BOOST_TEST(bad({"status", "vm1", "--timeout", "5"}) == "status: unknown option \"--timeout\"");
    BOOST_TEST(contains(help_text(command::stop), "--timeout SECONDS"));
    BOOST_TEST(contains(help_text(command::stop), "Default 60."));
}

BOOST_AUTO_TEST_CASE(bad_values_name_the_option) {
    BOOST_TEST(bad({"start", "vm1", "--cpus", "0"}) == "start: --cpus: expected 1..255, got \"0\"");
    BOOST_TEST(contains(bad({"start", "vm1", "--cpus", "x"}), "--cpus"));
    BOOST_TEST(contains(bad({"start", "vm1", "--memory", "lots"}), "--memory"));
    BOOST_TEST(contains(bad({"start", "vm1", "--forward", "a:b"}), "--forward"));
    BOOST_TEST(contains(bad({"start", "vm1", "--forward", "1:2:3:4"}), "--forward"));
    BOOST_TEST(contains(bad({"start", "vm1", "--accel", "hvf"}), "--accel"));
    BOOST_TEST(contains(bad({"start", "vm1", "--net", "bridge"}), "--net"));
    BOOST_TEST(contains(bad({"up", "vm1", "--timeout", "-1"}), "--timeout"));
    BOOST_TEST(bad({"start", "vm1", "--cpus"}) == "start: --cpus: missing N");
    BOOST_TEST(bad({"status", "vm1", "--json=yes"}) == "status: --json takes no value");
}

BOOST_AUTO_TEST_CASE(options_belong_to_their_commands) {
    BOOST_TEST(bad({"stop", "vm1", "--cpus", "2"}) == "stop: unknown option \"--cpus\"");
    BOOST_TEST(bad({"status", "vm1", "--base", "x"}) == "status: unknown option \"--base\"");
    BOOST_TEST(bad({"stop", "vm1", "-x"}) == "stop: unknown option \"-x\"");
    BOOST_TEST(contains(bad({"stop", "vm1", "--", "x"}), "only for shell and up"));
}

BOOST_AUTO_TEST_CASE(operands) {
    BOOST_TEST(bad({"stop"}) == "stop: missing NAME");
    BOOST_TEST(bad({"stop", "a", "b"}) == "stop: unexpected argument \"b\"");
    BOOST_TEST(contains(bad({"stop", "a/b"}), "may only contain"));
    BOOST_TEST(bad({"create", "vm1"}) == "create: missing --base IMAGE or --image URL");
    BOOST_TEST(bad({"start", "vm1", "--initrd", "i"}) == "start: --initrd needs --kernel");
    BOOST_TEST(bad({"shell", "vm1", "--"}) == "shell: missing COMMAND after '--'");
    BOOST_TEST(bad({"sync", "vm1", "a"}) == "sync: missing TO");
    auto s = ok({"sync", "vm1", "./src/", "/tmp/src", "--exclude", "*.o", "--chown", "a:b"});
    BOOST_TEST(s.from == "./src/");
    BOOST_TEST(s.to == "/tmp/src");
    BOOST_TEST((s.excludes == std::vector<std::string>{"*.o"}));
    BOOST_TEST(s.chown == "a:b");
    auto sh = ok({"shell", "vm1", "--", "ls", "--", "-l"});
    BOOST_TEST((sh.remote_command == std::vector<std::string>{"ls", "--", "-l"}));
    BOOST_TEST(ok({"shell", "vm1"}).remote_command.empty());
}

BOOST_AUTO_TEST_CASE(cidata) {
    auto i = ok({"cidata", "seed.iso", "ud", "--hostname", "h", "--ssh-key", "k.pub",
                 "--network-config", "nc"});
    BOOST_TEST(i.output == "seed.iso");
    BOOST_TEST(i.user_data == "ud");
    BOOST_TEST(i.hostname == "h");
    BOOST_TEST(i.ssh_keys.size() == 1u);
    BOOST_TEST(i.network_config == "nc");
    BOOST_TEST(ok({"cidata", "seed.iso", "ud", "md"}).meta_data == "md");
    BOOST_TEST(bad({"cidata"}) == "cidata: missing OUTPUT");
    BOOST_TEST(contains(bad({"cidata", "o", "u", "m", "--hostname", "h"}), "verbatim"));
    BOOST_TEST(contains(bad({"cidata", "o", "u", "m", "x"}), "unexpected argument"));
    BOOST_TEST(bad({"cidata", "o", "--data-dir", "d"}) == "cidata: unknown option \"--data-dir\"");
}

// Issue 16 item 3: `cp` with NAME:PATH on either side, `sync --from-guest`.
BOOST_AUTO_TEST_CASE(copy_endpoints) {
    auto e = parse_copy_endpoint("tiny:/etc/hostname");
    BOOST_TEST(e.vm == "tiny");
    BOOST_TEST(e.path == "/etc/hostname");
    e = parse_copy_endpoint("vm-1.x:rel/a:b");
    BOOST_TEST(e.vm == "vm-1.x");
    BOOST_TEST(e.path == "rel/a:b");
    // Not a VM name before the first ':' (a '/', ".", empty): a host path.
    for (auto host : {"/srv/a:b", "./vm:x", "a/b:c", ".:x", ":x", "plain", "../x:y", "a b:c"}) {
        BOOST_TEST_CONTEXT(host) {
            auto h = parse_copy_endpoint(host);
            BOOST_TEST(h.vm.empty());
            BOOST_TEST(h.path == host);
        }
    }
    e = parse_copy_endpoint("tiny:");
    BOOST_TEST(e.vm == "tiny");
    BOOST_TEST(e.path.empty());
}

BOOST_AUTO_TEST_CASE(cp_both_ways) {
    auto in = ok({"cp", "--exclude", "*.o", "--chown", "a:b", "./src/", "tiny:/srv/app"});
    BOOST_TEST((in.cmd == command::copy));
    BOOST_TEST(in.name == "tiny");
    BOOST_TEST(!in.from_guest);
    BOOST_TEST(in.from == "./src/");
    BOOST_TEST(in.to == "/srv/app");
    BOOST_TEST(in.excludes == std::vector<std::string>{"*.o"});
    BOOST_TEST(in.chown == "a:b");
    auto out = ok({"cp", "tiny:/var/log/", "logs"});
    BOOST_TEST(out.from_guest);
    BOOST_TEST(out.name == "tiny");
    BOOST_TEST(out.from == "/var/log/");
    BOOST_TEST(out.to == "logs");
    BOOST_TEST(contains(bad({"cp", "a:/x", "b:/y"}), "one side must be a host path"));
    BOOST_TEST(contains(bad({"cp", "/x", "./y"}), "write one side as NAME:PATH"));
    BOOST_TEST(contains(bad({"cp", "tiny:", "/y"}), "empty path in \"tiny:\""));
    BOOST_TEST(contains(bad({"cp", "tiny:/x"}), "missing DEST"));
    BOOST_TEST(contains(bad({"cp"}), "missing SOURCE"));
    BOOST_TEST(contains(bad({"cp", "a", "b:/c", "d"}), "unexpected argument \"d\""));
    BOOST_TEST(contains(bad({"cp", "--from-guest", "a:/b", "c"}), "unknown option"));
    auto back = ok({"sync", "tiny", "/etc/", "out", "--from-guest"});
    BOOST_TEST(back.from_guest);
    BOOST_TEST(back.from == "/etc/");
    BOOST_TEST(back.to == "out");
    BOOST_TEST(!ok({"sync", "tiny", "a", "/b"}).from_guest);
}

// Issue 16 item 4: `forward NAME [ADDR:]HOST:GUEST [--remove]`.
BOOST_AUTO_TEST_CASE(forward_specs) {
    auto f = ok({"forward", "tiny", "127.0.0.1:8080:80"});
    BOOST_TEST((f.cmd == command::forward));
    BOOST_REQUIRE(f.forward_spec);
    BOOST_TEST(f.forward_spec->host_address == "127.0.0.1");
    BOOST_TEST(f.forward_spec->host_port == 8080);
    BOOST_TEST(f.forward_spec->guest_port == 80);
    BOOST_TEST(!f.remove_forward);
    auto any = ok({"forward", "tiny", "0:80"});
    BOOST_TEST(any.forward_spec->host_port == 0);
    BOOST_TEST(ok({"forward", "tiny", "80"}).forward_spec->host_port == 0);
    BOOST_TEST(!ok({"forward", "tiny"}).forward_spec); // show them
    auto rm = ok({"forward", "tiny", "--remove", "8080:80"});
    BOOST_TEST(rm.remove_forward);
    for (auto spec : {"", "x", "1:2:3:4", "127.0.0.1:", ":80", "8080:0", "70000:80", "8080:-1",
                      "localhost:8080:80", "10.0.0:1:2", "+1:2", " 1:2"}) {
        BOOST_TEST_CONTEXT(spec) {
            BOOST_TEST(contains(bad({"forward", "tiny", spec}), "expected [ADDR:]HOST:GUEST"));
        }
    }
    BOOST_TEST(contains(bad({"forward", "tiny", "--remove", "0:80"}), "needs the host port"));
    BOOST_TEST(contains(bad({"forward", "tiny", "--remove"}), "--remove needs the forward"));
    BOOST_TEST(contains(bad({"forward"}), "missing NAME"));
    BOOST_TEST(contains(bad({"forward", "tiny", "1:2", "3:4"}), "unexpected argument"));
}

// Issue 16 item 5: `list [--json]` takes no NAME, but the directories.
BOOST_AUTO_TEST_CASE(list_takes_directories) {
    auto l = ok({"list", "--json", "--data-dir", "/d", "--runtime-dir", "/r"});
    BOOST_TEST((l.cmd == command::list));
    BOOST_TEST(l.json);
    BOOST_TEST(l.data_dir == "/d");
    BOOST_TEST(l.runtime_dir == "/r");
    BOOST_TEST(contains(bad({"list", "tiny"}), "unexpected argument \"tiny\""));
    BOOST_TEST(contains(bad({"list", "--user", "x"}), "unknown option"));
    BOOST_TEST(contains(help_text(command::list), "usage: localvm list [OPTIONS]"));
}

BOOST_AUTO_TEST_CASE(networks_and_the_network_command) {
    auto i = ok({"start", "vm1", "--network", "lan=10.0.0.1/24", "--network", "dmz"});
    BOOST_REQUIRE(i.networks.size() == 2u);
    BOOST_TEST(i.networks[0].network == "lan");
    BOOST_TEST(i.networks[0].address == "10.0.0.1/24");
    BOOST_TEST(i.networks[1].network == "dmz");
    BOOST_TEST(i.networks[1].address.empty());
    BOOST_TEST(contains(bad({"start", "vm1", "--network", "lan=10.0.2.5/24"}), "user-mode"));
    BOOST_TEST(contains(bad({"start", "vm1", "--network", "lan=x"}), "not an IPv4 address"));
    BOOST_TEST(contains(bad({"start", "vm1", "--network", "a/b"}), "network name"));
    BOOST_TEST(contains(bad({"start", "vm1", "--network", "lan", "--network", "lan=10.0.0.1"}),
                        "given twice"));
    BOOST_TEST(contains(bad({"status", "vm1", "--network", "lan"}), "--network"));

    auto c = ok({"network", "create", "lan", "--data-dir", "/d"});
    BOOST_TEST((c.cmd == command::network));
    BOOST_TEST(c.network_action == "create");
    BOOST_TEST(c.network == "lan");
    BOOST_TEST(c.data_dir == "/d");
    BOOST_TEST(ok({"network", "delete", "lan"}).network_action == "delete");
    BOOST_TEST(ok({"network", "list"}).network_action == "list");
    BOOST_TEST(contains(bad({"network"}), "missing ACTION"));
    BOOST_TEST(contains(bad({"network", "create"}), "missing NAME"));
    BOOST_TEST(contains(bad({"network", "list", "x"}), "unexpected argument"));
    BOOST_TEST(contains(bad({"network", "frob", "x"}), "unknown action"));
    BOOST_TEST(contains(bad({"network", "create", "a b"}), "network name"));
    BOOST_TEST(contains(help_text(command::network), "vde_switch"));
}

BOOST_AUTO_TEST_CASE(snapshot_and_clone) {
    auto s = ok({"snapshot", "vm1", "snap1"});
    BOOST_TEST((s.cmd == command::snapshot));
    BOOST_TEST(s.snapshot_action == "save");
    BOOST_TEST(s.name == "vm1");
    BOOST_TEST(s.snapshot == "snap1");
    BOOST_TEST(!s.stop_after_save); // the VM runs on by default
    auto explicit_save = ok({"snapshot", "save", "list", "snap1", "--stop"});
    BOOST_TEST(explicit_save.snapshot_action == "save");
    BOOST_TEST(explicit_save.name == "list");
    BOOST_TEST(explicit_save.stop_after_save);
    auto l = ok({"snapshot", "list", "--json", "--data-dir", "/d"});
    BOOST_TEST(l.snapshot_action == "list");
    BOOST_TEST(l.json);
    BOOST_TEST(l.data_dir == "/d");
    auto d = ok({"snapshot", "delete", "snap1"});
    BOOST_TEST(d.snapshot_action == "delete");
    BOOST_TEST(d.snapshot == "snap1");
    BOOST_TEST(d.name.empty());

    BOOST_TEST(bad({"snapshot"}) == "snapshot: missing NAME SNAP (or list, or delete SNAP)");
    BOOST_TEST(bad({"snapshot", "vm1"}) == "snapshot: missing SNAP");
    BOOST_TEST(bad({"snapshot", "save"}) == "snapshot: missing NAME");
    BOOST_TEST(bad({"snapshot", "vm1", "s", "x"}) == "snapshot: unexpected argument \"x\"");
    BOOST_TEST(bad({"snapshot", "delete"}) == "snapshot: missing SNAP");
    BOOST_TEST(bad({"snapshot", "list", "x"}) == "snapshot: unexpected argument \"x\"");
    BOOST_TEST(contains(bad({"snapshot", "vm1", "a/b"}), "snapshot: snapshot name: "));
    BOOST_TEST(contains(bad({"snapshot", "delete", ".."}), "snapshot name"));
    BOOST_TEST(contains(bad({"snapshot", "v/m", "s"}), "snapshot: "));
    BOOST_TEST(bad({"snapshot", "vm1", "s", "--json"}) ==
               "snapshot: --json is for 'snapshot list'");
    BOOST_TEST(bad({"snapshot", "list", "--stop"}) == "snapshot: list takes no --stop");
    BOOST_TEST(bad({"snapshot", "delete", "s", "--stop"}) == "snapshot: delete takes no --stop");
    BOOST_TEST(contains(bad({"snapshot", "vm1", "s", "--memory", "1G"}), "unknown option"));

    auto c = ok({"clone", "snap1", "new1", "--runtime-dir", "/r"});
    BOOST_TEST((c.cmd == command::clone));
    BOOST_TEST(c.snapshot == "snap1");
    BOOST_TEST(c.name == "new1");
    BOOST_TEST(c.runtime_dir == "/r");
    BOOST_TEST(bad({"clone", "snap1"}) == "clone: missing NEW");
    BOOST_TEST(bad({"clone"}) == "clone: missing SNAP");
    BOOST_TEST(contains(bad({"clone", "a/b", "new1"}), "clone: snapshot name: "));
    BOOST_TEST(contains(bad({"clone", "snap1", "a/b"}), "clone: "));
    BOOST_TEST(contains(bad({"clone", "snap1", "new1", "--stop"}), "unknown option"));

    BOOST_TEST(contains(help_text(command::snapshot), "--stop"));
    BOOST_TEST(contains(help_text(command::snapshot), "runs on"));
    BOOST_TEST(contains(help_text(command::clone), "localvm start NEW"));
    BOOST_TEST(contains(help_text(command::usage), "  snapshot  Save"));
    BOOST_TEST(contains(help_text(command::usage), "  clone     Create"));
    BOOST_TEST(command_word(command::clone) == "clone");
}

// The backend: --connect URI (checked), --pool, LOCALVM_CONNECT when no
// flag is given; the flag wins; neither is the QEMU backend.
BOOST_AUTO_TEST_CASE(connect_chooses_the_libvirt_backend) {
    auto i =
        ok({"up", "vm1", "--connect", "qemu+unix:///system?socket=/run/x.sock", "--pool", "tests"});
    BOOST_TEST(i.connect == "qemu+unix:///system?socket=/run/x.sock");
    BOOST_TEST(i.pool == "tests");
    BOOST_TEST(connect_uri(i, nullptr) == i.connect);
    BOOST_TEST(connect_uri(i, "qemu:///system") == i.connect); // the flag wins
    BOOST_TEST(ok({"create", "vm1", "--base", "b.qcow2", "--connect", "qemu:///system"}).connect ==
               "qemu:///system");
    for (auto cmd : {"start", "shell", "console", "stop", "delete", "status"})
        BOOST_TEST(ok({cmd, "vm1", "--connect", "qemu:///system"}).connect == "qemu:///system");

    auto plain = ok({"start", "vm1"});
    BOOST_TEST(plain.connect.empty());
    BOOST_TEST(connect_uri(plain, nullptr).empty());
    BOOST_TEST(connect_uri(plain, "").empty());
    BOOST_TEST(connect_uri(plain, "qemu+ssh://root@127.0.0.1/system?keyfile=/k") ==
               "qemu+ssh://root@127.0.0.1/system?keyfile=/k");
    try {
        connect_uri(plain, "not a uri");
        BOOST_FAIL("no throw");
    } catch (const localvm::error& e) {
        BOOST_TEST((e.code() == localvm::errc::invalid_argument));
        BOOST_TEST(contains(e.what(), "LOCALVM_CONNECT"), e.what());
    }

    BOOST_TEST(contains(bad({"up", "vm1", "--connect", "http://x/"}), "--connect"));
    BOOST_TEST(contains(bad({"up", "vm1", "--connect", "http://x/"}), "libvirt URI"));
    BOOST_TEST(contains(bad({"up", "vm1", "--pool", ""}), "pool"));
    BOOST_TEST(contains(bad({"list", "--connect", "qemu:///system"}), "--connect"));
    BOOST_TEST(contains(help_text(command::up), "--connect URI"));
}
