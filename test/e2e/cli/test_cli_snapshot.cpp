// `localvm snapshot` and `localvm clone` against the tiny guest: up, write
// files, save while running (the original runs on), two clones started at
// once each seeing what was written before the save and none of the
// others' writes, `snapshot list` (table and --json), a snapshot of a
// clone saved with --stop, deletes refused while clones (or snapshots of
// clones) depend, and bad input as one clear line with nothing left
// behind. TCG; temporary XDG directories.
#define BOOST_TEST_MODULE cli_snapshot_e2e
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <future>

#include "../../integration/cli/run_cli.hpp"
#include "../qemu/guest.hpp"

namespace json = boost::json;
namespace fs = std::filesystem;
using lvcli::run;

namespace {

// Stops whatever VMs of the test still run, whatever happened (scratch
// only removes the directories).
struct stopper {
    std::vector<std::string> env;
    std::vector<std::string> names;
    ~stopper() {
        for (const auto& n : names)
            run({"stop", n, "-q"}, env);
    }
};

std::vector<std::string> entries(const fs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        out.push_back(it->path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

json::object only_snapshot(const lvcli::outcome& listed) {
    auto all = json::parse(listed.out).as_object().at("snapshots").as_array();
    BOOST_REQUIRE_EQUAL(all.size(), 1u);
    return all[0].as_object();
}

} // namespace

BOOST_AUTO_TEST_CASE(snapshot_clone_list_delete) {
    auto g = lve2e::load_guest("tiny");
    lvcli::scratch s;
    auto env = s.env();
    stopper guard{env, {"src", "c1", "c2", "c3"}};
    auto base = lvcli::make_base_image(s);
    const auto data = s.root / "data" / "localvm";
    const auto snaps = data / "@snapshots";

    auto up = run({"up",
                   "src",
                   "--base",
                   base.string(),
                   "--kernel",
                   g["KERNEL"],
                   "--initrd",
                   g["INITRD"],
                   "--cmdline",
                   g["CMDLINE"],
                   "--cpus",
                   "1",
                   "--memory",
                   "512M",
                   "--accel",
                   "tcg",
                   "--net",
                   "restricted",
                   "-q",
                   "--",
                   "echo before-save > "
                   "~/marker && sync"},
                  env);
    BOOST_REQUIRE_MESSAGE(up.status == 0, "up failed: " << up.err);

    // Bad input: one line, exit 1, nothing made.
    auto no_vm = run({"snapshot", "nosuch", "s1"}, env);
    BOOST_TEST(no_vm.status == 1);
    BOOST_TEST(no_vm.err == "localvm: snapshot nosuch: VM nosuch does not exist\n", no_vm.err);
    auto no_snap = run({"clone", "nosnap", "c1"}, env);
    BOOST_TEST(no_snap.status == 1);
    BOOST_TEST(no_snap.err_lines().size() == 1u, no_snap.err);
    BOOST_TEST(no_snap.err.starts_with("localvm: clone c1: no snapshot named nosnap"), no_snap.err);
    BOOST_TEST(!fs::exists(data / "c1"));
    BOOST_TEST(!fs::exists(snaps / "s1"));

    // The save; the original runs on by default.
    auto saved = run({"snapshot", "src", "s1"}, env);
    BOOST_REQUIRE_MESSAGE(saved.status == 0, saved.err);
    BOOST_TEST(saved.err.find("src runs on") != std::string::npos, saved.err);
    auto src_state = json::parse(run({"status", "src", "--json"}, env).out).as_object();
    BOOST_TEST(src_state.at("state").as_string() == "running");
    auto after = run({"shell", "src", "--", "echo after-save > ~/after && cat ~/marker"}, env);
    BOOST_TEST(after.status == 0, after.err);
    BOOST_TEST(after.out == "before-save\n");

    auto clash = run({"snapshot", "src", "s1"}, env);
    BOOST_TEST(clash.status == 1);
    BOOST_TEST(clash.err_lines().size() == 1u, clash.err);
    BOOST_TEST(clash.err.find("snapshot s1 already exists") != std::string::npos, clash.err);
    BOOST_TEST((entries(snaps) == std::vector<std::string>{"s1"})); // no temporary left

    // Two clones, started at once; each restores the machine of the save.
    for (const char* c : {"c1", "c2"}) {
        auto made = run({"clone", "s1", c}, env);
        BOOST_TEST(made.status == 0, made.err);
    }
    auto twice = run({"clone", "s1", "c1"}, env);
    BOOST_TEST(twice.status == 1);
    BOOST_TEST(twice.err_lines().size() == 1u, twice.err);
    BOOST_TEST(twice.err.find("already exists") != std::string::npos, twice.err);
    auto over_src = run({"clone", "s1", "src"}, env);
    BOOST_TEST(over_src.status == 1);
    BOOST_TEST(over_src.err.find("already exists") != std::string::npos, over_src.err);
    {
        auto a = std::async(std::launch::async, [&] { return run({"start", "c1"}, env); });
        auto b = std::async(std::launch::async, [&] { return run({"start", "c2"}, env); });
        auto ra = a.get();
        auto rb = b.get();
        BOOST_REQUIRE_MESSAGE(ra.status == 0, ra.err);
        BOOST_REQUIRE_MESSAGE(rb.status == 0, rb.err);
    }
    for (const char* c : {"c1", "c2"}) {
        auto seen = run({"up", c, "-q", "--",
                         std::string("cat ~/marker; test ! -e ~/after && echo no-after; "
                                     "ls ~ | grep -c '^mine-'; echo ") +
                             c + " > ~/mine-" + c},
                        env);
        BOOST_TEST(seen.status == 0, seen.err);
        BOOST_TEST(seen.out == "before-save\nno-after\n0\n", c << ": " << seen.out);
    }

    // list: table and JSON.
    auto table = run({"snapshot", "list"}, env);
    BOOST_TEST(table.status == 0, table.err);
    BOOST_TEST(table.out.starts_with("NAME  SOURCE  CREATED (UTC)"), table.out);
    BOOST_TEST(table.out.find("\ns1    src     ") != std::string::npos, table.out);
    BOOST_TEST(table.out.ends_with("  c1,c2\n"), table.out);
    auto listed = run({"snapshot", "list", "--json"}, env);
    BOOST_TEST(listed.status == 0, listed.err);
    auto s1 = only_snapshot(listed);
    BOOST_TEST(s1.at("name").as_string() == "s1");
    BOOST_TEST(s1.at("source_vm").as_string() == "src");
    BOOST_TEST(s1.at("created_at").to_number<std::int64_t>() > 0);
    BOOST_TEST(!s1.at("qemu_version").as_string().empty());
    BOOST_TEST(s1.at("size_bytes").to_number<std::uint64_t>() > (1u << 20));
    BOOST_TEST(s1.at("memory_mib").to_number<int>() == 512);
    BOOST_TEST((s1.at("clones") == json::array{"c1", "c2"}));

    auto refused = run({"snapshot", "delete", "s1"}, env);
    BOOST_TEST(refused.status == 1);
    BOOST_TEST(refused.err == "localvm: snapshot delete s1: snapshot s1 is the disk of its "
                              "clones c1, c2; delete them first (`localvm delete NAME`)\n",
               refused.err);
    BOOST_TEST(fs::exists(snaps / "s1" / "snapshot.json"));

    // A snapshot of a clone, and --stop: the clone ends after the save.
    auto of_clone = run({"snapshot", "c2", "s2", "--stop"}, env);
    BOOST_TEST(of_clone.status == 0, of_clone.err);
    BOOST_TEST(of_clone.err.find("c2 is stopped") != std::string::npos, of_clone.err);
    auto c2_state = json::parse(run({"status", "c2", "--json"}, env).out).as_object();
    BOOST_TEST(c2_state.at("state").as_string() == "stopped");
    auto not_running = run({"snapshot", "c2", "s3"}, env);
    BOOST_TEST(not_running.status == 1);
    BOOST_TEST(not_running.err_lines().size() == 1u, not_running.err);
    BOOST_TEST(not_running.err.find("is not running") != std::string::npos, not_running.err);
    BOOST_TEST(!fs::exists(snaps / "s3"));

    for (const char* c : {"c1", "c2"}) {
        if (std::string(c) == "c1")
            BOOST_TEST(run({"stop", c}, env).status == 0);
        auto del = run({"delete", c}, env);
        BOOST_TEST(del.status == 0, del.err);
    }
    // s2's disk layer is backed by s1's.
    auto heir = run({"snapshot", "delete", "s1"}, env);
    BOOST_TEST(heir.status == 1);
    BOOST_TEST(heir.err_lines().size() == 1u, heir.err);
    BOOST_TEST(heir.err.find("saved from its clones: s2") != std::string::npos, heir.err);
    auto c3 = run({"clone", "s2", "c3"}, env);
    BOOST_TEST(c3.status == 0, c3.err);
    auto c3_up = run({"up", "c3", "-q", "--", "cat ~/marker ~/mine-c2"}, env);
    BOOST_TEST(c3_up.status == 0, c3_up.err);
    BOOST_TEST(c3_up.out == "before-save\nc2\n");
    BOOST_TEST(run({"stop", "c3"}, env).status == 0);
    BOOST_TEST(run({"delete", "c3"}, env).status == 0);

    for (const char* snap : {"s2", "s1"}) {
        auto del = run({"snapshot", "delete", snap}, env);
        BOOST_TEST(del.status == 0, del.err);
        BOOST_TEST(del.err == "deleted snapshot " + std::string(snap) + "\n");
    }
    BOOST_TEST(run({"snapshot", "list"}, env).out == "no snapshots\n");
    BOOST_TEST(entries(snaps).empty());
    auto gone = run({"snapshot", "delete", "s1"}, env);
    BOOST_TEST(gone.status == 1);
    BOOST_TEST(gone.err.starts_with("localvm: snapshot delete s1: no snapshot named s1"), gone.err);

    // The original ran on through all of it.
    auto still = run({"shell", "src", "--", "cat ~/after"}, env);
    BOOST_TEST(still.out == "after-save\n", still.err);
    BOOST_TEST(run({"stop", "src"}, env).status == 0);
    BOOST_TEST(run({"delete", "src"}, env).status == 0);
}
