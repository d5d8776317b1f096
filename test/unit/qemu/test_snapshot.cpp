#define BOOST_TEST_MODULE qemu_snapshot
// Snapshot records, the restore's comparison and reading a running QEMU's
// machine back from its command line: pure, no QEMU.
#include "snapshot_files.hpp"

#include <localvm/error.hpp>
#include <localvm/qemu/arguments.hpp>
#include <localvm/qemu/snapshot.hpp>
#include <localvm/qmp/migration.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>

#include <unistd.h>

using namespace localvm::qemu;
using localvm::errc;

namespace {

snapshot_info sample() {
    snapshot_info s;
    s.name = "snap";
    s.source_vm = "vm1";
    s.created_at = 1764590000;
    s.qemu_version = "7.2.22 (Debian 1:7.2+dfsg-7+deb12u16)";
    s.state_bytes = 92182476;
    s.disk_bytes = 393216;
    s.save_ms = 324;
    s.machine = "pc-q35-7.2";
    s.cpus = 1;
    s.memory_mib = 512;
    s.boot = localvm::direct_boot{"/g/vmlinux", "/g/initrd.img", "console=ttyS0 rootwait"};
    s.net = network::restricted;
    s.ports = {{"127.0.0.1", 0, 22}};
    s.files = {{"/g/vmlinux", std::string(64, 'a'), 65906612, 1764590000123456789},
               {"/g/initrd.img", std::string(64, 'b'), 13673472, 1764590000000000000}};
    s.base_image = "/data/base.qcow2";
    return s;
}

std::string digest_of(const file_digest& f) {
    return f.path == "/g/vmlinux" ? std::string(64, 'a') : std::string(64, 'b');
}

} // namespace

BOOST_AUTO_TEST_CASE(record_round_trips_and_malformed_is_refused) {
    auto s = sample();
    auto text = render_snapshot(s);
    boost::system::error_code ec;
    auto back = parse_snapshot(text, ec);
    BOOST_REQUIRE(back);
    BOOST_TEST(!ec);
    BOOST_TEST(render_snapshot(*back) == text);
    BOOST_TEST(back->boot->cmdline == "console=ttyS0 rootwait");
    BOOST_TEST(back->files[1].path == "/g/initrd.img");
    BOOST_TEST(back->files[0].size == 65906612u);
    BOOST_TEST(back->files[0].mtime_ns == 1764590000123456789);
    BOOST_TEST((back->net == network::restricted));

    auto firmware = s;
    firmware.boot.reset();
    firmware.firmware_code = "/usr/share/OVMF/OVMF_CODE.fd";
    back = parse_snapshot(render_snapshot(firmware), ec);
    BOOST_REQUIRE(back);
    BOOST_TEST(!back->boot);
    BOOST_TEST(back->firmware_code == "/usr/share/OVMF/OVMF_CODE.fd");

    for (std::string bad : {"", "[]", "{}", "not json",
                            R"({"name":"x"})"}) {
        BOOST_TEST(!parse_snapshot(bad, ec), bad);
        BOOST_TEST(ec == make_error_code(errc::protocol_error));
    }
    // Every member matters: drop each in turn.
    auto whole = boost::json::parse(text).as_object();
    for (const auto& kv : whole) {
        auto less = whole;
        less.erase(kv.key());
        BOOST_TEST(!parse_snapshot(boost::json::serialize(less), ec), kv.key());
    }
}

BOOST_AUTO_TEST_CASE(restore_mismatch_names_each_difference) {
    auto s = sample();
    BOOST_TEST(restore_mismatch(s, 1, 512, s.boot, digest_of) == "");
    BOOST_TEST(restore_mismatch(s, 1, 1024, s.boot, digest_of) ==
               "memory: the snapshot has 512 MiB, the start asks for 1024 MiB");
    BOOST_TEST(restore_mismatch(s, 2, 512, s.boot, digest_of) ==
               "cpus: the snapshot has 1, the start asks for 2");
    BOOST_TEST(restore_mismatch(s, 1, 512, std::nullopt, digest_of) ==
               "boot: the snapshot was saved from a direct kernel boot, the start asks for "
               "firmware boot");
    auto other = s.boot;
    other->cmdline += " quiet";
    other->kernel = "/h/vmlinux";
    BOOST_TEST(restore_mismatch(s, 1, 512, other, digest_of) ==
               "kernel: the snapshot has /g/vmlinux, the start asks for /h/vmlinux; kernel "
               "command line: the snapshot has \"console=ttyS0 rootwait\", the start asks for "
               "\"console=ttyS0 rootwait quiet\"");
    auto changed = [](const file_digest& f) {
        return f.path == "/g/vmlinux" ? std::string(64, 'c') : std::string();
    };
    BOOST_TEST(restore_mismatch(s, 1, 512, s.boot, changed) ==
               "/g/vmlinux changed since the snapshot was saved (sha256 aaaaaaaaaaaa... then, "
               "cccccccccccc... now); /g/initrd.img is gone (the snapshot was saved with it)");
}

// What command_line writes, machine_from_argv reads back.
BOOST_AUTO_TEST_CASE(machine_is_read_back_from_the_command_line) {
    launch_plan p;
    p.name = "vm1";
    p.qemu_binary = "qemu-system-x86_64";
    p.cpus = 3;
    p.memory_mib = 1536;
    p.disk = "/d/disk.qcow2";
    p.qmp_socket = "/r/qmp.sock";
    p.console_socket = "/r/console.sock";
    p.console_log = "/r/console.log";
    p.pidfile = "/r/qemu.pid";
    p.net = network::restricted;
    p.ports = {{"127.0.0.1", 2222, 22}};
    p.boot = localvm::direct_boot{"/k/vmlinux", "/k/initrd.img", "console=ttyS0 rootwait"};
    snapshot_info s;
    BOOST_TEST(detail::machine_from_argv(command_line(p), s) == "");
    BOOST_TEST(s.machine == "q35");
    BOOST_TEST((s.accel == accelerator::tcg));
    BOOST_TEST(s.cpus == 3u);
    BOOST_TEST(s.memory_mib == 1536u);
    BOOST_REQUIRE(s.boot);
    BOOST_TEST(s.boot->kernel == "/k/vmlinux");
    BOOST_TEST(s.boot->initrd == "/k/initrd.img");
    BOOST_TEST(s.boot->cmdline == "console=ttyS0 rootwait");
    BOOST_TEST((s.net == network::restricted));

    p.boot.reset();
    p.uefi = firmware{"/fw/a,b/OVMF_CODE.fd", "/d/efi-vars.fd"};
    p.net = network::user;
    p.machine = "pc-q35-7.2";
    snapshot_info f;
    BOOST_TEST(detail::machine_from_argv(command_line(p), f) == "");
    BOOST_TEST(!f.boot);
    BOOST_TEST(f.firmware_code == "/fw/a,b/OVMF_CODE.fd");
    BOOST_TEST(f.machine == "pc-q35-7.2");
    BOOST_TEST((f.net == network::user));

    snapshot_info none;
    BOOST_TEST(detail::machine_from_argv({"qemu-system-x86_64"}, none) != "");
}

BOOST_AUTO_TEST_CASE(migration_status_is_parsed) {
    boost::system::error_code ec;
    auto i = localvm::qmp::parse_migration_info(
        boost::json::parse(R"({"status":"completed","total-time":321,
            "ram":{"transferred":92182476,"total":536870912}})"),
        ec);
    BOOST_REQUIRE(i);
    BOOST_TEST(i->status == "completed");
    BOOST_TEST(i->total_time_ms == 321u);
    BOOST_TEST(i->ram_transferred == 92182476u);
    i = localvm::qmp::parse_migration_info(
        boost::json::parse(R"({"status":"failed","error-desc":"Unable to write to file"})"), ec);
    BOOST_REQUIRE(i);
    BOOST_TEST(i->error == "Unable to write to file");
    BOOST_TEST(!localvm::qmp::parse_migration_info(boost::json::parse(R"({"status":1})"), ec));
    BOOST_TEST(ec == make_error_code(errc::protocol_error));
    BOOST_TEST(!localvm::qmp::parse_migration_info(boost::json::parse("[]"), ec));
    BOOST_TEST(localvm::qmp::migration_ended("completed"));
    BOOST_TEST(localvm::qmp::migration_ended("failed"));
    BOOST_TEST(localvm::qmp::migration_ended("cancelled"));
    BOOST_TEST(!localvm::qmp::migration_ended("active"));
    BOOST_TEST(!localvm::qmp::migration_ended("cancelling"));
}

// An unchanged file keeps its recorded digest without being read again; a
// changed one is read again.
BOOST_AUTO_TEST_CASE(digest_now_trusts_an_unchanged_file_only) {
    auto p = std::filesystem::temp_directory_path() /
             ("localvm-digest-" + std::to_string(::getpid()));
    {
        std::ofstream(p) << "kernel";
    }
    auto d = detail::digest_file(p);
    BOOST_TEST(d.sha256.size() == 64u);
    BOOST_TEST(d.size == 6u);
    BOOST_TEST(detail::digest_now(d) == d.sha256);
    auto forged = d;
    forged.sha256 = std::string(64, 'f'); // same size and mtime: trusted, not read
    BOOST_TEST(detail::digest_now(forged) == forged.sha256);
    {
        std::ofstream(p, std::ios::app) << "!";
    }
    BOOST_TEST(detail::digest_now(forged) == detail::file_sha256(p));
    BOOST_TEST(detail::digest_now(forged) != d.sha256);
    std::filesystem::remove(p);
    BOOST_TEST(detail::digest_now(d) == "");
}
