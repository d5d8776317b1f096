// The tiny guest through libvirt: a private libvirtd (the client's fixture,
// QEMU as root, TCG), the libvirt backend's lifecycle and its errors in
// order, as the QEMU backend's e2e_tiny checks them, by one test body over
// the daemon's local socket and over `qemu+ssh://root@127.0.0.1:PORT/...`
// (an sshd on a loopback port in front of the same daemon, as a remote host:
// pool copies of the base and boot files, no pid, SSH through the jump
// host, the console on the daemon's stream alone). Exit 77 when libvirtd,
// QEMU, sshd, nc, unshare or setpriv is absent
// (or not root).
#define BOOST_TEST_MODULE e2e_libvirt_tiny
#include <localvm/image/digest.hpp>
#include <localvm/libvirt/client.hpp>
#include <localvm/libvirt/manager.hpp>
#include <localvm/process/child.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <iostream>

#include "../../common/file.hpp"
#include "../../common/pty.hpp"
#include "../qemu/guest.hpp"
#include "daemon_fixture.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using localvm::testing::expect_error;
using namespace std::chrono_literals;

namespace {

using lvtest::read_file;

// One private libvirtd for every case, with the sshd in front of it.
libvirt_test::daemon_fixture* fixture = nullptr;
libvirt_test::private_libvirtd* libvirtd = nullptr;

struct global_setup {
    global_setup() {
        fixture = &libvirt_test::daemon_fixture::start(true);
        libvirtd = &fixture->daemon;
    }
};
BOOST_TEST_GLOBAL_FIXTURE(global_setup);

asio::awaitable<fs::path> blank_base(const lve2e::home& h) {
    auto base = h.root / "base.qcow2";
    localvm::process::options mk;
    mk.argv = {"qemu-img", "create", "-q", "-f", "qcow2", base.string(), "64M"};
    co_await localvm::process::run_checked(mk);
    co_return base;
}

localvm::libvirt::manager_options libvirt_options(const lve2e::home& h, const std::string& name,
                                                  const std::string& uri = libvirtd->uri()) {
    localvm::libvirt::manager_options o;
    o.uri = uri;
    o.pool = "localvm-test";
    o.vm = h.options(name);
    return o;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string s;
    for (auto& l : lines)
        s += l + "\n";
    return s;
}

std::string sha256_of(const fs::path& p) {
    localvm::image::hasher h(localvm::image::digest_algorithm::sha256);
    h.update(read_file(p));
    return h.finish().hex;
}

// The pool's copy of a local file (a remote daemon's view of it).
fs::path pool_copy(const fs::path& file) {
    return libvirtd->pool_dir() / ("localvm-sha256-" + sha256_of(file));
}

// How the lifecycle reaches the daemon.
struct connection {
    std::string uri;
    bool remote = false; // through ssh: the daemon's files are not "ours"
};

// The lifecycle of one VM, its errors in order, over `via`.
asio::awaitable<void> lifecycle(const lve2e::home& h, const localvm::testing::guest_image& g,
                                connection via, std::string name) {
    auto ex = co_await asio::this_coro::executor;
    auto base = co_await blank_base(h);
    auto o = libvirt_options(h, name, via.uri);
    localvm::libvirt::manager m(ex, o);
    std::vector<std::string> log;
    m.set_output([&](std::string_view l) {
        log.emplace_back(l);
        std::cerr << l << "\n";
    });
    auto s = lve2e::tiny_start(g, h);
    s.user_data = "#!/bin/sh\necho localvm-libvirt-marker > /run/marker\n";

    // Errors before the VM exists.
    BOOST_TEST(!co_await m.exists());
    co_await expect_error(errc::not_found, [&] { return m.start(s); });
    co_await expect_error(errc::not_running, [&] { return m.stop(); });
    co_await expect_error(errc::not_running, [&] { return m.shell("true", {}); });
    co_await expect_error(errc::not_found, [&] { return m.create(h.root / "nope.qcow2"); });
    auto bad = s;
    bad.cpus = 0;
    co_await expect_error(errc::invalid_argument, [&] { return m.start(bad); });

    co_await m.create(base);
    BOOST_TEST(co_await m.exists());
    co_await expect_error(errc::already_exists, [&] { return m.create(base); });
    BOOST_TEST(fs::exists(libvirtd->pool_dir() / (name + ".qcow2")));
    // A remote daemon got the base as a pool copy, named by digest.
    BOOST_TEST(fs::exists(pool_copy(base)) == via.remote);
    if (via.remote)
        BOOST_TEST(read_file(pool_copy(base)) == read_file(base));

    // Named before the boot: the guest prints its console lines within
    // seconds of `start`, and wait_ready must be following the console by
    // then (the stream carries only what comes after it opens).
    const auto kernel_copy = pool_copy(g.boot().kernel);
    const auto started = std::chrono::steady_clock::now();
    co_await m.start(s);
    BOOST_TEST(co_await m.running());
    auto pid = co_await m.pid();
    if (via.remote) {
        BOOST_TEST(!pid.has_value()); // a pid on the daemon's host means nothing here
        BOOST_TEST(fs::exists(kernel_copy));
    } else {
        BOOST_REQUIRE(pid.has_value());
        BOOST_TEST(read_file("/proc/" + std::to_string(*pid) + "/comm").starts_with("qemu-system"));
    }
    auto ports = co_await m.ports();
    BOOST_REQUIRE(ports.size() == 1u);
    BOOST_TEST(ports[0].host_address == "127.0.0.1");
    BOOST_TEST(ports[0].host_port != 0);
    BOOST_TEST(ports[0].guest_port == 22);
    co_await expect_error(errc::already_running, [&] { return m.start(s); });
    co_await expect_error(errc::already_running, [&] { return m.remove(); });

    co_await m.wait_ready(180s);
    std::cerr << "metric libvirt_" << (via.remote ? "ssh_" : "") << "tiny_start_to_ready_ms "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started)
                     .count()
              << "\n";
    // wait_ready followed the console stream: its lines reached the output.
    bool console_lines = false;
    for (auto& l : log)
        console_lines = console_lines || l.find("] console: localvm-tiny: ") != std::string::npos;
    BOOST_TEST(console_lines, joined(log));
    // Another manager of the same VM (as another process would be)
    // sees it run and reaches it: the state is the daemon's.
    {
        localvm::libvirt::manager other(ex, o);
        BOOST_TEST(co_await other.running());
        auto other_pid = co_await other.pid();
        BOOST_TEST((other_pid == pid));
        auto hello = co_await other.shell("echo hello", {});
        BOOST_TEST(hello.output == "hello\n");
    }
    if (!via.remote) {
        // This host has the console log: the whole boot is searched.
        auto line = co_await m.wait_for_console("localvm-tiny: ssh ready", 10s);
        BOOST_TEST(line.find("ssh ready") != std::string::npos, line);
        co_await expect_error(errc::timeout,
                              [&] { return m.wait_for_console("never printed", 1s); });
    }
    // The console stream alone (remotely no log file is readable; here it
    // is hidden): text printed during the wait is found, and echoed to the
    // output; earlier text is not.
    {
        const auto log_file = m.files().console_log;
        const auto hidden = fs::path(log_file.string() + ".hidden");
        if (!via.remote)
            fs::rename(log_file, hidden); // QEMU keeps writing through its fd
        auto what = co_await expect_error(errc::timeout,
                                          [&] { return m.wait_for_console("ssh ready", 1s); });
        BOOST_TEST(what.find("the console showed nothing") != std::string::npos, what);
        log.clear();
        using namespace asio::experimental::awaitable_operators;
        auto print = [&]() -> asio::awaitable<localvm::shell_result> {
            co_return co_await m.shell("sudo sh -c 'echo stream-marker-$((6*7)) >/dev/console'",
                                       {});
        };
        auto both = co_await (m.wait_for_console("stream-marker-42", 60s) && print());
        BOOST_TEST(std::get<0>(both) == "stream-marker-42");
        BOOST_TEST(std::get<1>(both).exit_status == 0);
        BOOST_TEST(joined(log).find("] console: stream-marker-42") != std::string::npos,
                   joined(log));
        if (!via.remote)
            fs::rename(hidden, log_file);
    }
    auto r = co_await m.shell("cat /run/marker", {});
    BOOST_TEST(r.exit_status == 0);
    BOOST_TEST(r.output == "localvm-libvirt-marker\n");
    r = co_await m.shell("echo out; exit 42", {});
    BOOST_TEST(r.exit_status == 42);
    BOOST_TEST(r.output == "out\n");

    // sync over the same forward.
    auto src = h.root / "src dir";
    fs::create_directories(src);
    std::ofstream(src / "a b.txt") << "alpha\n";
    co_await m.sync(src.string() + "/", "/home/debian/dst", {});
    r = co_await m.shell("cat '/home/debian/dst/a b.txt'", {});
    BOOST_TEST(r.output == "alpha\n");

    // The serial console through a pty, on the console stream: what we type
    // reaches the guest's ttyS0 and its echo comes back; while attached, the
    // console is busy for another client (a wait falls back to the log file
    // where this host has one, else is busy too); Ctrl-] detaches.
    {
        lvtest::pty term;
        asio::posix::stream_descriptor master(ex, term.take_master());
        localvm::console::attach_options ao;
        ao.input_fd = term.slave;
        ao.output_fd = term.slave;
        std::string seen;
        auto typing = [&]() -> asio::awaitable<bool> {
            co_await lvtest::type(master, "\recho console-$((6*7))\r");
            bool ok = co_await lvtest::read_until(master, seen, "echo console-$((6*7))", 60s);
            localvm::libvirt::manager other(ex, o);
            auto busy = co_await expect_error(errc::busy, [&] { return other.console(); });
            BOOST_TEST(busy.find("in use") != std::string::npos, busy);
            if (via.remote) {
                co_await expect_error(errc::busy,
                                      [&] { return other.wait_for_console("ssh ready", 10s); });
            } else {
                auto found = co_await other.wait_for_console("ssh ready", 10s);
                BOOST_TEST(found.find("ssh ready") != std::string::npos);
            }
            co_await lvtest::type(master, "\x1d");
            co_return ok;
        };
        using namespace asio::experimental::awaitable_operators;
        auto [how, ok] = co_await (m.attach_console(ao) && typing());
        BOOST_TEST(ok, "console output: " << seen);
        BOOST_TEST((how == localvm::console::attach_end::detached));
    }

    // stop: the ACPI power button is enough for this guest.
    log.clear();
    co_await m.stop();
    BOOST_TEST(!co_await m.running());
    BOOST_TEST(!(co_await m.pid()).has_value());
    bool by_button = false;
    for (auto& l : log)
        by_button = by_button || l.find("power button") != std::string::npos;
    BOOST_TEST(by_button);
    for (auto& l : log)
        BOOST_TEST(l.find("SIGTERM") == std::string::npos, l);
    if (!via.remote)
        BOOST_TEST(read_file(m.files().console_log).find("localvm-tiny: ssh ready") !=
                   std::string::npos);
    co_await expect_error(errc::not_running, [&] { return m.stop(); });
    co_await expect_error(errc::not_running, [&] { return m.shell("true", {}); });
    co_await expect_error(errc::not_running, [&] { return m.ports(); });
    co_await expect_error(errc::not_running, [&] { return m.wait_for_console("x", 1s); });
    co_await expect_error(errc::not_running, [&] { return m.console(); });
    log.clear();

    // A second start of the same VM (a new seed replaces the old).
    co_await m.start(s);
    if (via.remote) // the boot files' copies are reused
        BOOST_TEST(joined(log).find("reusing volume localvm-sha256-") != std::string::npos,
                   joined(log));
    co_await m.wait_ready(180s);
    r = co_await m.shell("cat /run/marker", {});
    BOOST_TEST(r.output == "localvm-libvirt-marker\n");
    co_await m.stop();

    co_await m.remove();
    BOOST_TEST(!co_await m.exists());
    BOOST_TEST(!fs::exists(libvirtd->pool_dir() / (name + ".qcow2")));
    BOOST_TEST(!fs::exists(libvirtd->pool_dir() / (name + "-seed.iso")));
    BOOST_TEST(!fs::exists(m.files().data));
    BOOST_TEST(fs::exists(pool_copy(base)) == via.remote); // shared: kept
    co_await m.remove();                                   // no-op
}

} // namespace

BOOST_AUTO_TEST_CASE(tiny_guest_lifecycle_through_libvirt) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            connection local; // (not braced in the co_await: GCC 12 miscompiles that)
            local.uri = libvirtd->uri();
            co_await lifecycle(h, g, local, "lvtiny");
        },
        900s);
}

BOOST_AUTO_TEST_CASE(tiny_guest_lifecycle_through_libvirt_over_ssh) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            const auto t0 = std::chrono::steady_clock::now();
            connection over_ssh;
            over_ssh.uri = fixture->remote();
            over_ssh.remote = true;
            co_await lifecycle(h, g, over_ssh, "lvssh");
            std::cerr << "metric libvirt_ssh_lifecycle_ms "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - t0)
                             .count()
                      << "\n";
        },
        900s);
}

// Over ssh, a base the pool already holds is reused, and an upload that was
// interrupted (its volume there without the marker) is replaced, not used.
BOOST_AUTO_TEST_CASE(pool_copies_are_reused_and_interrupted_ones_replaced) {
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto base = h.root / "other-base.qcow2";
            localvm::process::options mk;
            mk.argv = {"qemu-img", "create", "-q", "-f", "qcow2", base.string(), "32M"};
            co_await localvm::process::run_checked(mk);
            const auto copy = pool_copy(base);
            const auto vol = copy.filename().string();
            // An interrupted upload: the volume with other bytes, no marker.
            {
                auto c = co_await localvm::libvirt::client::connect(libvirtd->uri());
                auto pool = co_await c.lookup_pool("localvm-test");
                auto v = co_await c.create_volume(
                    pool, "<volume><name>" + vol +
                              "</name><capacity unit='bytes'>4</capacity><target><format "
                              "type='raw'/></target></volume>");
                co_await c.upload(v, "junk");
                co_await c.close();
            }
            std::vector<std::string> log;
            auto sink = [&log](std::string_view l) {
                log.emplace_back(l);
            };
            localvm::libvirt::manager a(ex, libvirt_options(h, "lvcopya", fixture->remote()));
            a.set_output(sink);
            co_await a.create(base);
            BOOST_TEST(joined(log).find("an upload that did not finish") != std::string::npos,
                       joined(log));
            BOOST_TEST(read_file(copy) == read_file(base));
            BOOST_TEST(fs::exists(copy.string() + ".complete"));
            log.clear();
            localvm::libvirt::manager b(ex, libvirt_options(h, "lvcopyb", fixture->remote()));
            b.set_output(sink);
            co_await b.create(base);
            BOOST_TEST(joined(log).find("reusing volume " + vol) != std::string::npos, joined(log));
            BOOST_TEST(joined(log).find("uploading") == std::string::npos, joined(log));
            // A base that is already a volume of the pool (`volume:NAME`):
            // the daemon's path and format, nothing uploaded; a volume with
            // a backing file of its own (another VM's overlay) is refused,
            // a missing one not found.
            log.clear();
            localvm::libvirt::manager v(ex, libvirt_options(h, "lvvol", fixture->remote()));
            v.set_output(sink);
            co_await expect_error(errc::not_found, [&] { return v.create("volume:no-such"); });
            auto chained = co_await expect_error(
                errc::unsupported, [&] { return v.create("volume:lvcopya.qcow2"); });
            BOOST_TEST(chained.find("backing file of its own") != std::string::npos, chained);
            BOOST_TEST(!co_await v.exists());
            co_await v.create("volume:" + vol);
            BOOST_TEST(co_await v.exists());
            BOOST_TEST(joined(log).find("on " + copy.string() + " (") != std::string::npos,
                       joined(log));
            BOOST_TEST(joined(log).find("uploading") == std::string::npos, joined(log));
            localvm::process::options info;
            info.argv = {"qemu-img", "info", "--output=json",
                         (libvirtd->pool_dir() / "lvvol.qcow2").string()};
            info.out.mode = localvm::process::stream_mode::capture;
            auto described = co_await localvm::process::run_checked(info);
            BOOST_TEST(described.out.find(copy.string()) != std::string::npos, described.out);
            co_await v.remove();
            co_await a.remove();
            co_await b.remove();
            BOOST_TEST(fs::exists(copy));
        },
        300s);
}

BOOST_AUTO_TEST_CASE(stop_escalates_when_the_guest_ignores_acpi) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto base = co_await blank_base(h);
            auto o = libvirt_options(h, "lvnoacpi");
            o.vm.stop.powerdown_timeout = 3s;
            localvm::libvirt::manager m(ex, o);
            std::vector<std::string> log;
            m.set_output([&](std::string_view l) { log.emplace_back(l); });
            co_await m.create(base);
            co_await m.start(lve2e::tiny_start(g, h, "localvm.noacpi=1"));
            co_await m.wait_ready(300s);
            log.clear();
            co_await m.stop();
            BOOST_TEST(!co_await m.running());
            BOOST_TEST(joined(log).find("quit") != std::string::npos, joined(log));
            co_await m.remove();
        },
        600s);
}

// QEMU refuses to start (its host port is taken): process_failed with
// QEMU's words, nothing left running, and the VM starts once the port is free.
BOOST_AUTO_TEST_CASE(a_start_qemu_refuses_leaves_nothing_running) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto base = co_await blank_base(h);
            localvm::libvirt::manager m(ex, libvirt_options(h, "lvbusy"));
            co_await m.create(base);
            auto taken = std::make_unique<asio::ip::tcp::acceptor>(
                ex, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
            auto s = lve2e::tiny_start(g, h);
            s.ports = {{"127.0.0.1", taken->local_endpoint().port(), 22}};
            try {
                co_await m.start(s);
                BOOST_FAIL("start succeeded on a taken port");
            } catch (const localvm::error& e) {
                BOOST_TEST((e.code() == errc::process_failed), e.what());
                BOOST_TEST(std::string(e.what()).find("host forwarding") != std::string::npos,
                           e.what());
            }
            BOOST_TEST(!co_await m.running());
            taken.reset();
            co_await m.start(s);
            BOOST_TEST(co_await m.running());
            co_await m.stop();
            co_await m.remove();
        },
        600s);
}

// A guest kernel panic ends the domain (pvpanic, on_crash destroy): wait_ready
// fails at once with guest_died and the console's last lines.
// Firmware (UEFI) boot through a remote daemon (ssh): the firmware arrives
// as a pool copy, the variable store is the pool's volume <name>-vars.fd,
// made at the first start, kept across starts and deleted by remove. The
// disk is blank: OVMF finds nothing to boot and starts its shell on the
// serial console, seen on the console stream. (A local daemon differs only
// in taking the firmware's own path; one boot is left out to save CI time.)
BOOST_AUTO_TEST_CASE(firmware_boot_through_a_remote_daemon) {
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto base = co_await blank_base(h);
            {
                const std::string name = "lvefissh";
                auto o = libvirt_options(h, name, fixture->remote());
                o.vm.stop.powerdown_timeout = 2s; // the firmware's shell ignores ACPI
                localvm::libvirt::manager m(ex, o);
                std::vector<std::string> log;
                m.set_output([&](std::string_view l) {
                    log.emplace_back(l);
                    std::cerr << l << "\n";
                });
                co_await m.create(base);
                localvm::start_options s; // no boot: the firmware boots
                s.cpus = 1;
                s.memory = "256M";
                const auto vars = libvirtd->pool_dir() / (name + "-vars.fd");
                co_await m.start(s);
                BOOST_TEST(fs::exists(vars));
                auto line = co_await m.wait_for_console("Shell>", 180s);
                BOOST_TEST(line.find("Shell>") != std::string::npos, line);
                co_await m.stop();
                co_await m.start(s); // again: the same variable store
                co_await m.stop();
                // Made once (from the template), then reused.
                std::size_t made = 0;
                for (auto& l : log)
                    made += l.find("making the UEFI variable store") != std::string::npos;
                BOOST_TEST(made == 1u, joined(log));
                // The firmware came through the daemon.
                BOOST_TEST(joined(log).find("uploading /usr/share/OVMF/") != std::string::npos,
                           joined(log));
                co_await m.remove();
                BOOST_TEST(!fs::exists(vars));
            }
        },
        900s);
}

BOOST_AUTO_TEST_CASE(a_guest_that_panics_fails_wait_ready_fast) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto base = co_await blank_base(h);
            localvm::libvirt::manager m(ex, libvirt_options(h, "lvpanics"));
            co_await m.create(base);
            co_await m.start(lve2e::tiny_start(g, h, "localvm.panic=1"));
            // A deadline far beyond the test's own: only a fast failure passes.
            auto what =
                co_await expect_error(errc::guest_died, [&] { return m.wait_ready(3600s); });
            BOOST_TEST(what.find("panic") != std::string::npos, what);
            BOOST_TEST(!co_await m.running());
            co_await m.remove();
        },
        300s);
}

// A create cancelled while its base is being uploaded leaves neither the
// pool copy nor its marker nor the overlay: nothing half-uploaded to reuse.
BOOST_AUTO_TEST_CASE(a_cancelled_upload_leaves_no_volume) {
    using namespace asio::experimental::awaitable_operators;
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            // Large enough that the upload waits on the connection's queue.
            auto base = h.root / "big-base.img";
            localvm::process::options mk;
            mk.argv = {"qemu-img", "create", "-q", "-f", "raw", base.string(), "96M"};
            co_await localvm::process::run_checked(mk);
            const auto copy = pool_copy(base);
            localvm::libvirt::manager m(ex, libvirt_options(h, "lvcancel", fixture->remote()));
            asio::steady_timer uploading(ex, std::chrono::steady_clock::time_point::max());
            m.set_output([&uploading](std::string_view l) {
                if (l.find("uploading") != std::string_view::npos)
                    uploading.cancel();
            });
            auto r = co_await (m.create(base) ||
                               uploading.async_wait(asio::as_tuple(asio::use_awaitable)));
            BOOST_TEST(r.index() == 1u); // the upload began, then create was cancelled
            BOOST_TEST(!fs::exists(copy));
            BOOST_TEST(!fs::exists(copy.string() + ".complete"));
            BOOST_TEST(!co_await m.exists());
            // And the next create uploads it whole.
            co_await m.create(base);
            BOOST_TEST(fs::exists(copy.string() + ".complete"));
            BOOST_TEST(fs::file_size(copy) == fs::file_size(base));
            co_await m.remove();
        },
        300s);
}
