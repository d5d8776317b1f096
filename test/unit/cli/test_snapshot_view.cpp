// What `snapshot list` prints (JSON with stable keys, parsed back; the
// table) and what the start of a clone takes from its snapshot.
#define BOOST_TEST_MODULE cli_snapshot_view
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include "snapshot_view.hpp"

using namespace localvm::cli;
namespace json = boost::json;
namespace qemu = localvm::qemu;

namespace {

qemu::snapshot_info sample() {
    qemu::snapshot_info s;
    s.name = "snap1";
    s.source_vm = "src";
    s.created_at = 1764601445; // 2025-12-01 15:04:05 UTC
    s.qemu_version = "7.2.22 (Debian 1:7.2+dfsg-7+deb12u16)";
    s.state_bytes = 3u << 20;
    s.disk_bytes = 1u << 20;
    s.save_ms = 420;
    s.machine = "pc-q35-7.2";
    s.cpus = 1;
    s.memory_mib = 512;
    s.boot = localvm::direct_boot{"/g/vmlinux", "/g/initrd", "console=ttyS0 rootwait"};
    s.net = qemu::network::restricted;
    s.ports = {{"127.0.0.1", 0, 22}, {"127.0.0.1", 0, 8080}};
    s.clones = {"c1", "c2"};
    s.dir = "/d/@snapshots/snap1";
    return s;
}

} // namespace

BOOST_AUTO_TEST_CASE(list_json_has_stable_keys) {
    auto text = render_snapshot_list_json({sample()});
    BOOST_TEST(text.find('\n') == std::string::npos);
    auto v = json::parse(text).as_object();
    auto& list = v.at("snapshots").as_array();
    BOOST_REQUIRE(list.size() == 1u);
    auto& o = list[0].as_object();
    std::vector<std::string> keys;
    for (const auto& kv : o)
        keys.emplace_back(kv.key());
    BOOST_TEST(
        (keys == std::vector<std::string>{"name", "source_vm", "created_at", "qemu_version",
                                          "size_bytes", "state_bytes", "disk_bytes", "save_ms",
                                          "machine", "cpus", "memory_mib", "clones", "path"}));
    BOOST_TEST(o.at("name").as_string() == "snap1");
    BOOST_TEST(o.at("source_vm").as_string() == "src");
    BOOST_TEST(o.at("created_at").to_number<std::int64_t>() == 1764601445);
    BOOST_TEST(o.at("size_bytes").to_number<std::uint64_t>() == 4u << 20);
    BOOST_TEST(o.at("clones").as_array().size() == 2u);
    BOOST_TEST(o.at("clones").as_array()[1].as_string() == "c2");
    BOOST_TEST(o.at("path").as_string() == "/d/@snapshots/snap1");
    BOOST_TEST(render_snapshot_list_json({}) == "{\"snapshots\":[]}");
}

BOOST_AUTO_TEST_CASE(list_table) {
    auto none = sample();
    none.name = "other";
    none.clones.clear();
    auto text = render_snapshot_list_table({sample(), none});
    BOOST_TEST(text == "NAME   SOURCE  CREATED (UTC)        SIZE     QEMU    CLONES\n"
                       "snap1  src     2025-12-01 15:04:05  4.0 MiB  7.2.22  c1,c2\n"
                       "other  src     2025-12-01 15:04:05  4.0 MiB  7.2.22  -\n",
               text);
    BOOST_TEST(render_snapshot_list_table({}) == "no snapshots\n");
}

BOOST_AUTO_TEST_CASE(a_clone_starts_with_the_snapshot_machine_unless_told) {
    invocation i;
    i.cmd = command::start;
    i.name = "c1";
    auto d = with_snapshot_machine(i, sample());
    BOOST_TEST(*d.cpus == 1u);
    BOOST_TEST(d.memory == "512M");
    BOOST_TEST(d.kernel == "/g/vmlinux");
    BOOST_TEST(d.initrd == "/g/initrd");
    BOOST_TEST(d.cmdline == "console=ttyS0 rootwait");
    BOOST_TEST((*d.net == qemu::network::restricted));
    BOOST_REQUIRE(d.forwards.size() == 2u);
    BOOST_TEST(d.forwards[1].guest_port == 8080);
    BOOST_TEST(d.forwards[1].host_port == 0);

    // What the command line gives stays (the library refuses a mismatch).
    i.cpus = 2;
    i.memory = "1G";
    i.kernel = "/other";
    i.net = qemu::network::user;
    i.forwards = {{"127.0.0.1", 2222, 22}};
    auto kept = with_snapshot_machine(i, sample());
    BOOST_TEST(*kept.cpus == 2u);
    BOOST_TEST(kept.memory == "1G");
    BOOST_TEST(kept.kernel == "/other");
    BOOST_TEST(kept.initrd.empty());
    BOOST_TEST((*kept.net == qemu::network::user));
    BOOST_TEST(kept.forwards.size() == 1u);

    // A firmware-booted snapshot sets no kernel.
    auto fw = sample();
    fw.boot.reset();
    BOOST_TEST(with_snapshot_machine(invocation{}, fw).kernel.empty());
}
