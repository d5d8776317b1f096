// The tiny guest through libvirt: a private libvirtd (the client's fixture,
// QEMU as root, TCG), the libvirt backend's lifecycle and its errors in
// order, as the QEMU backend's e2e_tiny checks them. Exit 77 when libvirtd,
// QEMU, unshare or setpriv is absent (or not root).
#define BOOST_TEST_MODULE e2e_libvirt_tiny
#include <localvm/libvirt/manager.hpp>
#include <localvm/process/child.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <iostream>

#include "../../common/pty.hpp"
#include "../qemu/guest.hpp"
#include "private_libvirtd.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using localvm::testing::expect_error;
using namespace std::chrono_literals;

namespace {

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// One private libvirtd for every case (its first start on a machine probes
// QEMU's capabilities), on an io_context of its own that outlives it (its
// child process is bound to it).
struct daemon_home {
    asio::io_context ctx;
    libvirt_test::private_libvirtd daemon;
};
libvirt_test::private_libvirtd* libvirtd = nullptr;

struct global_setup {
    global_setup() {
        if (auto missing = libvirt_test::missing_tools(); !missing.empty()) {
            std::cerr << "skipping: " << missing << "\n";
            std::_Exit(77);
        }
        static daemon_home home;
        libvirtd = &home.daemon;
        const auto t0 = std::chrono::steady_clock::now();
        std::exception_ptr failed;
        bool done = false;
        asio::co_spawn(home.ctx, home.daemon.start(300s), [&](std::exception_ptr e) {
            failed = e;
            done = true;
        });
        while (!done)
            home.ctx.run_one();
        if (failed)
            std::rethrow_exception(failed);
        std::cerr << "private libvirtd ready after "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - t0)
                         .count()
                  << " ms\n";
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

localvm::libvirt::manager_options libvirt_options(const lve2e::home& h, const std::string& name) {
    localvm::libvirt::manager_options o;
    o.uri = libvirtd->uri();
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

} // namespace

BOOST_AUTO_TEST_CASE(tiny_guest_lifecycle_through_libvirt) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto base = co_await blank_base(h);
            auto o = libvirt_options(h, "lvtiny");
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
            BOOST_TEST(fs::exists(libvirtd->pool_dir() / "lvtiny.qcow2"));

            const auto started = std::chrono::steady_clock::now();
            co_await m.start(s);
            BOOST_TEST(co_await m.running());
            auto pid = co_await m.pid();
            BOOST_REQUIRE(pid.has_value());
            BOOST_TEST(
                read_file("/proc/" + std::to_string(*pid) + "/comm").starts_with("qemu-system"));
            auto ports = co_await m.ports();
            BOOST_REQUIRE(ports.size() == 1u);
            BOOST_TEST(ports[0].host_address == "127.0.0.1");
            BOOST_TEST(ports[0].host_port != 0);
            BOOST_TEST(ports[0].guest_port == 22);
            co_await expect_error(errc::already_running, [&] { return m.start(s); });
            co_await expect_error(errc::already_running, [&] { return m.remove(); });

            co_await m.wait_ready(180s);
            std::cerr << "metric libvirt_tiny_start_to_ready_ms "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - started)
                             .count()
                      << "\n";
            // wait_ready followed the console stream: its lines reached the output.
            bool console_lines = false;
            for (auto& l : log)
                console_lines =
                    console_lines || l.find("] console: localvm-tiny: ") != std::string::npos;
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
            auto line = co_await m.wait_for_console("localvm-tiny: ssh ready", 10s);
            BOOST_TEST(line.find("ssh ready") != std::string::npos, line);
            co_await expect_error(errc::timeout,
                                  [&] { return m.wait_for_console("never printed", 1s); });

            // The console stream alone, as over a remote connection where no
            // log file is readable (hidden here): text printed during the
            // wait is found, and echoed to the output; earlier text is not.
            {
                const auto log_file = m.files().console_log;
                const auto hidden = fs::path(log_file.string() + ".hidden");
                fs::rename(log_file, hidden); // QEMU keeps writing through its fd
                auto what = co_await expect_error(
                    errc::timeout, [&] { return m.wait_for_console("ssh ready", 1s); });
                BOOST_TEST(what.find("the console showed nothing") != std::string::npos, what);
                log.clear();
                using namespace asio::experimental::awaitable_operators;
                auto print = [&]() -> asio::awaitable<localvm::shell_result> {
                    co_return co_await m.shell(
                        "sudo sh -c 'echo stream-marker-$((6*7)) >/dev/console'", {});
                };
                auto both = co_await (m.wait_for_console("stream-marker-42", 60s) && print());
                BOOST_TEST(std::get<0>(both) == "stream-marker-42");
                BOOST_TEST(std::get<1>(both).exit_status == 0);
                BOOST_TEST(joined(log).find("] console: stream-marker-42") != std::string::npos,
                           joined(log));
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
            // The serial console through a pty, on the console stream: what we
            // type reaches the guest's ttyS0 and its echo comes back; while
            // attached, the console is busy for another client (a wait on
            // this host falls back to the log file); Ctrl-] detaches.
            {
                lvtest::pty term;
                asio::posix::stream_descriptor master(ex, term.take_master());
                localvm::console::attach_options ao;
                ao.input_fd = term.slave;
                ao.output_fd = term.slave;
                std::string seen;
                auto typing = [&]() -> asio::awaitable<bool> {
                    co_await lvtest::type(master, "\recho console-$((6*7))\r");
                    bool ok =
                        co_await lvtest::read_until(master, seen, "echo console-$((6*7))", 60s);
                    localvm::libvirt::manager other(ex, o);
                    auto busy = co_await expect_error(errc::busy, [&] { return other.console(); });
                    BOOST_TEST(busy.find("in use") != std::string::npos, busy);
                    auto found = co_await other.wait_for_console("ssh ready", 10s);
                    BOOST_TEST(found.find("ssh ready") != std::string::npos);
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
            BOOST_TEST(read_file(m.files().console_log).find("localvm-tiny: ssh ready") !=
                       std::string::npos);
            co_await expect_error(errc::not_running, [&] { return m.stop(); });
            co_await expect_error(errc::not_running, [&] { return m.shell("true", {}); });
            co_await expect_error(errc::not_running, [&] { return m.ports(); });
            co_await expect_error(errc::not_running, [&] { return m.wait_for_console("x", 1s); });
            co_await expect_error(errc::not_running, [&] { return m.console(); });

            // A second start of the same VM (a new seed replaces the old).
            co_await m.start(s);
            co_await m.wait_ready(180s);
            r = co_await m.shell("cat /run/marker", {});
            BOOST_TEST(r.output == "localvm-libvirt-marker\n");
            co_await m.stop();

            co_await m.remove();
            BOOST_TEST(!co_await m.exists());
            BOOST_TEST(!fs::exists(libvirtd->pool_dir() / "lvtiny.qcow2"));
            BOOST_TEST(!fs::exists(libvirtd->pool_dir() / "lvtiny-seed.iso"));
            BOOST_TEST(!fs::exists(m.files().data));
            co_await m.remove(); // no-op
        },
        900s);
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
