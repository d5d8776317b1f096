// The libvirt client against a real libvirtd 9.0 (private, see
// private_libvirtd.hpp), over its unix socket and over ssh to 127.0.0.1 (an
// sshd this test starts; on the far side `nc -U` with socket=, else
// virt-ssh-helper as for libvirt's own client): version, a tiny domain
// (TCG, no disk, no NIC, a multiboot kernel that floods the serial port)
// defined, started, inspected, its console read, its monitor asked,
// destroyed and undefined with its lifecycle events in order; a volume
// uploaded and read back by path; the daemon killed mid-call failing every
// waiter. Exit 77 when libvirtd, QEMU, sshd, nc, unshare or setpriv is absent.
#define BOOST_TEST_MODULE libvirt_libvirtd
#include <localvm/error.hpp>
#include <localvm/libvirt/client.hpp>
#include <localvm/process/child.hpp>
#include <localvm/ssh/probe.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <iostream>

#include "../../common/file.hpp"
#include "loopback_sshd.hpp"
#include "multiboot.hpp"
#include "private_libvirtd.hpp"
#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lv = localvm::libvirt;
namespace process = localvm::process;
using namespace std::chrono_literals;
using localvm::errc;

namespace {

// One io_context for the whole program (destroyed last): the daemon and
// sshd children live across test cases and must stay on a live context.
struct environment {
    asio::io_context ctx;
    libvirt_test::private_libvirtd daemon;
    fs::path kernel;
    // uri(): socket= given, `nc -U` the private socket on the far side;
    // remote_uri(): no socket=, the remote route libvirt's own client takes.
    std::unique_ptr<libvirt_test::loopback_sshd> sshd;
};

environment* env = nullptr;

using lvtest::read_file;

// Runs `body` on the program's io_context until it finishes (or fails the
// test after `limit`). Children's reapers may stay pending: run handler by
// handler until the body is done rather than until no work is left.
void run(std::function<asio::awaitable<void>()> body, std::chrono::seconds limit = 300s) {
    auto& ctx = env->ctx;
    ctx.restart();
    bool done = false;
    std::exception_ptr failed;
    asio::co_spawn(ctx, body(), [&](std::exception_ptr e) {
        failed = e;
        done = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline)
        ctx.run_one_until(deadline);
    if (!done) {
        ctx.stop(); // the body's frame goes with the context's next restart
        BOOST_FAIL("the test body did not finish within " << limit.count() << " s");
    }
    if (failed)
        std::rethrow_exception(failed);
}

void progress(const std::string& what) {
    std::cerr << "libvirt test: " << what << std::endl;
}

struct global_setup {
    global_setup() {
        std::string missing = libvirt_test::missing_tools();
        if (missing.empty())
            missing = libvirt_test::missing_ssh_tools();
        if (!missing.empty()) {
            std::cerr << "skipping: " << missing << "\n";
            std::_Exit(77);
        }
        static environment e;
        env = &e;
        e.kernel = e.daemon.dir() / "flood.bin";
        console_test::write_flood_kernel(e.kernel);
        const auto started = std::chrono::steady_clock::now();
        run(
            [&]() -> asio::awaitable<void> {
                // Capabilities are probed at the first start on a machine
                // (minutes under load); later starts take a second.
                co_await e.daemon.start(300s);
            },
            400s);
        std::cerr << "private libvirtd ready after "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count()
                  << " ms\n";
        e.sshd = std::make_unique<libvirt_test::loopback_sshd>(e.daemon);
    }
    ~global_setup() { env = nullptr; } // members kill sshd, libvirtd and its QEMUs
};
BOOST_TEST_GLOBAL_FIXTURE(global_setup);

// sshd on 127.0.0.1 (loopback_sshd.hpp), started by the first case that needs it.
asio::awaitable<void> ensure_sshd() {
    co_await env->sshd->start();
}

std::string local_hostname() {
    std::array<char, 256> host{};
    ::gethostname(host.data(), host.size() - 1);
    return host.data();
}

std::string domain_xml(const std::string& name) {
    return "<domain type='qemu'><name>" + name +
           "</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
           "<os><type arch='x86_64' machine='pc'>hvm</type><kernel>" +
           env->kernel.string() +
           "</kernel></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
           "<serial type='pty'/><console type='pty'/><memballoon model='none'/></devices></domain>";
}

std::vector<lv::lifecycle_event> expected_milestones() {
    return {lv::lifecycle_event::defined, lv::lifecycle_event::started,
            lv::lifecycle_event::stopped, lv::lifecycle_event::undefined};
}

// The whole scenario, over whichever transport `c` uses.
asio::awaitable<void> exercise(lv::client& c, std::string name) {
    BOOST_TEST(co_await c.hypervisor_version() >= 7000000u);
    BOOST_TEST(co_await c.hostname() == local_hostname());
    auto auth = co_await c.auth_list();
    BOOST_TEST(auth.size() == 1u);
    BOOST_TEST(auth.at(0) == 0); // none

    auto events = co_await c.subscribe_lifecycle();
    progress(name + ": define");
    auto defined = co_await c.define_xml(domain_xml(name));
    BOOST_TEST(defined.name == name);
    progress(name + ": start");
    co_await c.create(defined);
    auto running = co_await c.lookup_domain(name);
    BOOST_TEST(running.id > 0);
    auto [state, reason] = co_await c.domain_get_state(running);
    BOOST_TEST((state == lv::domain_state::running));
    BOOST_TEST(reason == 1); // booted
    auto info = co_await c.domain_get_info(running);
    BOOST_TEST(info.max_memory_kib == 32768u);
    BOOST_TEST(info.vcpus == 1u);
    BOOST_TEST((co_await c.xml_desc(running)).find("<name>" + name + "</name>") !=
               std::string::npos);

    progress(name + ": monitor");
    auto status = co_await c.monitor_command(running, R"({"execute":"query-status"})");
    BOOST_TEST(status.find("\"running\":true") != std::string::npos, status);

    {
        progress(name + ": console");
        auto console = co_await c.open_console(running);
        std::string seen;
        while (seen.find("flood 0123456789 abcdefghijklmnopqrstuvwxyz") == std::string::npos) {
            auto d = co_await console.read(60s);
            BOOST_TEST_REQUIRE(d.has_value(), "the console ended before the guest's output");
            seen += *d;
        }
        console.abort();
    }

    progress(name + ": destroy");
    co_await c.destroy(running);
    auto [after, why] = co_await c.domain_get_state(defined);
    BOOST_TEST((after == lv::domain_state::shutoff));
    BOOST_TEST(why == 2); // destroyed
    co_await c.undefine(defined);
    try {
        co_await c.lookup_domain(name);
        BOOST_FAIL("an undefined domain was found");
    } catch (const lv::call_error& e) {
        BOOST_TEST(e.libvirt_code() == 42, e.what()); // VIR_ERR_NO_DOMAIN
    }

    // Defined, Started, Stopped, Undefined in this order (libvirt may put
    // Resumed before Started, as QEMU resumes the CPUs it started paused).
    progress(name + ": events");
    std::vector<lv::lifecycle_event> seen;
    while (seen.empty() || seen.back() != lv::lifecycle_event::undefined) {
        auto e = co_await events.next(60s);
        if (e.dom.name == name)
            seen.push_back(e.event);
    }
    std::vector<lv::lifecycle_event> milestones;
    for (auto e : seen)
        if (e == lv::lifecycle_event::defined || e == lv::lifecycle_event::started ||
            e == lv::lifecycle_event::stopped || e == lv::lifecycle_event::undefined)
            milestones.push_back(e);
    BOOST_TEST((milestones == expected_milestones()));
    co_await events.close();

    // A volume: created, uploaded in more than one stream packet, read
    // back through its path, deleted.
    progress(name + ": volume");
    auto pool = co_await c.lookup_pool("localvm-test");
    auto vol = co_await c.create_volume(pool, "<volume><name>" + name +
                                                  ".img</name><capacity unit='KiB'>1024</capacity>"
                                                  "<target><format type='raw'/></target></volume>");
    std::string data;
    for (int i = 0; data.size() < 600 * 1024; ++i)
        data += "block " + std::to_string(i) + " of localvm's upload\n";
    co_await c.upload(vol, data);
    auto path = co_await c.volume_path(vol);
    BOOST_TEST(path == (env->daemon.pool_dir() / (name + ".img")).string());
    BOOST_TEST((read_file(path).substr(0, data.size()) == data));
    auto found = co_await c.lookup_volume(pool, name + ".img");
    BOOST_TEST((found == vol));
    co_await c.delete_volume(vol);
    BOOST_TEST(!fs::exists(path));
}

} // namespace

BOOST_AUTO_TEST_CASE(local_socket_scenario) {
    run([]() -> asio::awaitable<void> {
        auto c = co_await lv::client::connect(env->daemon.uri());
        co_await exercise(c, "localvm-local");
        co_await c.close();
        BOOST_TEST((c.end() == lv::connection_end::clean));
    });
}

BOOST_AUTO_TEST_CASE(ssh_scenario) {
    run([]() -> asio::awaitable<void> {
        co_await ensure_sshd();
        auto c = co_await lv::client::connect(env->sshd->uri());
        co_await exercise(c, "localvm-ssh");
        co_await c.close();
        BOOST_TEST((c.end() == lv::connection_end::clean));
    });
}

// No socket=: the remote command is the one libvirt's own client runs,
// virt-ssh-helper qemu:///system when the host has it (Debian 12's
// libvirt-daemon does), else nc -U on the system socket's path.
BOOST_AUTO_TEST_CASE(ssh_default_remote_route_scenario) {
    BOOST_TEST_REQUIRE(fs::exists("/usr/bin/virt-ssh-helper"),
                       "virt-ssh-helper (libvirt-daemon) is not installed");
    run([]() -> asio::awaitable<void> {
        co_await ensure_sshd();
        auto c = co_await lv::client::connect(env->sshd->remote_uri());
        co_await exercise(c, "localvm-remote");
        co_await c.close();
        BOOST_TEST((c.end() == lv::connection_end::clean));
    });
}

// Each remote command on its own: virt-ssh-helper (proxy=native, no
// fallback) and nc -U on the default socket path (proxy=netcat).
BOOST_AUTO_TEST_CASE(ssh_native_and_netcat_proxies_without_socket) {
    run([]() -> asio::awaitable<void> {
        co_await ensure_sshd();
        const std::vector<std::string> proxies = {"native", "netcat"};
        for (const auto& proxy : proxies) {
            auto c = co_await lv::client::connect(env->sshd->remote_uri() + "&proxy=" + proxy);
            BOOST_TEST(co_await c.hypervisor_version() >= 7000000u, proxy);
            BOOST_TEST(co_await c.hostname() == local_hostname(), proxy);
            co_await c.close();
            BOOST_TEST((c.end() == lv::connection_end::clean), proxy);
        }
    });
}

BOOST_AUTO_TEST_CASE(ssh_with_a_key_the_host_does_not_know_fails_with_ssh_reason) {
    run([]() -> asio::awaitable<void> {
        co_await ensure_sshd();
        auto stranger = env->daemon.dir() / "stranger";
        co_await libvirt_test::loopback_sshd::keygen(stranger);
        std::string u = env->sshd->uri();
        const auto key = env->sshd->key().string();
        u.replace(u.find(key), key.size(), stranger.string());
        try {
            co_await lv::client::connect(u);
            BOOST_FAIL("logged in with a key the host does not know");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::libvirt_closed);
            BOOST_TEST(e.diagnostic().find("Permission denied") != std::string::npos,
                       e.diagnostic());
        }
    });
}

// Last: it kills the daemon.
BOOST_AUTO_TEST_CASE(daemon_killed_mid_call_fails_every_waiter) {
    run([]() -> asio::awaitable<void> {
        co_await ensure_sshd();
        auto ex = co_await asio::this_coro::executor;
        auto local = co_await lv::client::connect(env->daemon.uri());
        auto remote = co_await lv::client::connect(env->sshd->uri());
        auto dom = co_await local.define_xml(domain_xml("localvm-kill"));
        co_await local.create(dom);
        dom = co_await local.lookup_domain("localvm-kill");
        // 16 loops of calls on each connection, in flight when it dies.
        int ended = 0, calls = 0;
        std::vector<std::string> errors;
        asio::steady_timer all(ex, std::chrono::steady_clock::time_point::max());
        auto loop = [&ended, &calls, &errors, &all](lv::client& c,
                                                    lv::domain_ref d) -> asio::awaitable<void> {
            try {
                for (;;) {
                    co_await c.domain_get_state(d);
                    ++calls;
                }
            } catch (const localvm::error& e) {
                if (e.code() != errc::libvirt_closed)
                    errors.push_back(e.what());
            }
            if (++ended == 32)
                all.cancel();
        };
        for (int i = 0; i < 16; ++i) {
            asio::co_spawn(ex, loop(local, dom), [](std::exception_ptr e) {
                if (e)
                    std::rethrow_exception(e);
            });
            asio::co_spawn(ex, loop(remote, dom), [](std::exception_ptr e) {
                if (e)
                    std::rethrow_exception(e);
            });
        }
        asio::steady_timer t(ex, 300ms);
        co_await t.async_wait(asio::use_awaitable); // let them run
        BOOST_TEST(calls > 0);
        BOOST_TEST(ended == 0);
        // Kill it the moment calls are waiting for replies on both.
        while (local.in_flight() == 0 || remote.in_flight() == 0)
            co_await asio::post(ex, asio::use_awaitable);
        BOOST_TEST_MESSAGE("killing libvirtd with " << local.in_flight() << " + "
                                                    << remote.in_flight() << " calls in flight");
        env->daemon.kill();
        boost::system::error_code ec;
        asio::steady_timer limit(ex, 30s);
        all.expires_at(std::chrono::steady_clock::now() + 30s);
        co_await all.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        BOOST_TEST(ended == 32);
        for (auto& e : errors)
            BOOST_ERROR("a waiter failed with another error: " << e);
        BOOST_TEST((local.end() == lv::connection_end::unexpected));
        BOOST_TEST((remote.end() == lv::connection_end::unexpected));
        // EOF or a reset, depending on what the daemon left unread.
        BOOST_TEST(
            local.end_diagnostic().starts_with("libvirt connection to " + env->daemon.socket()),
            local.end_diagnostic());
        co_await env->daemon.reap();
    });
}
