#define BOOST_TEST_MODULE qemu_lifecycle
#include "common.hpp"

#include <localvm/process/detached.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>

#include <signal.h>
#include <sys/mount.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using localvm::qemu::end_reason;
using lvtest::expect_error;
using lvtest::make_base;
using lvtest::slurp;
using namespace std::chrono_literals;

namespace {

asio::awaitable<int> run_starter(const lvtest::vm_home& h, std::string verb,
                                 std::string* out = nullptr) {
    const char* starter = std::getenv("LOCALVM_STARTER");
    BOOST_REQUIRE(starter);
    localvm::process::options o;
    o.argv = {starter, verb, (h.root / "data").string(), (h.root / "run").string(), "vm"};
    auto r = co_await localvm::process::run(o);
    if (out)
        *out = r.out;
    if (r.exit_code != 0 && r.exit_code != 3 && r.exit_code != 4)
        BOOST_TEST_MESSAGE("starter stderr: " << r.err);
    co_return r.exit_code;
}

} // namespace

using lvtest::leak_check;
BOOST_TEST_GLOBAL_FIXTURE(leak_check);

BOOST_AUTO_TEST_CASE(full_lifecycle) {
    auto before = localvm::testing::resource_snapshot::take();
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            std::vector<std::string> lines;
            localvm::qemu::manager m(ex, h.options());
            m.set_output([&](std::string_view l) { lines.emplace_back(l); });
            BOOST_TEST(!co_await m.exists());
            BOOST_TEST(!co_await m.running());
            co_await m.create(h.base);
            BOOST_TEST(co_await m.exists());
            co_await expect_error(errc::already_exists, [&] { return m.create(h.base); });

            co_await m.start(lvtest::small_vm());
            BOOST_TEST(co_await m.running());
            auto pid = co_await m.pid();
            BOOST_REQUIRE(pid);
            BOOST_TEST(slurp("/proc/" + std::to_string(*pid) + "/cmdline").find("qemu-system") !=
                       std::string::npos);
            BOOST_TEST(fs::exists(m.files().seed));
            auto ports = co_await m.ports();
            BOOST_REQUIRE(ports.size() == 1u);
            BOOST_TEST(ports[0].host_port != 0);
            BOOST_TEST(ports[0].guest_port == 22);
            // hostfwd listens on the port QEMU picked.
            asio::ip::tcp::socket sock(ex);
            co_await sock.async_connect({asio::ip::make_address("127.0.0.1"), ports[0].host_port},
                                        asio::use_awaitable);
            sock.close();
            auto st = co_await m.query();
            BOOST_TEST(st.running);
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->accel == localvm::qemu::accelerator::tcg));
            BOOST_TEST((st.state->last_end == end_reason::none));

            co_await expect_error(errc::already_running,
                                  [&] { return m.start(lvtest::small_vm()); });
            co_await expect_error(errc::already_running, [&] { return m.remove(); });
            BOOST_TEST(*co_await m.pid() == *pid);

            co_await m.stop();
            BOOST_TEST(!co_await m.running());
            BOOST_TEST(!localvm::process::alive(*pid));
            BOOST_TEST(!fs::exists(m.files().qmp_socket));
            BOOST_TEST(!fs::exists(m.files().pidfile));
            st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->last_end == end_reason::stopped));
            co_await expect_error(errc::not_running, [&] { return m.stop(); });
            co_await expect_error(errc::not_running, [&] { return m.ports(); });

            // It starts again from the same disk, then goes for good.
            co_await m.start(lvtest::small_vm());
            BOOST_TEST(co_await m.running());
            co_await m.stop();
            co_await m.remove();
            BOOST_TEST(!co_await m.exists());
            BOOST_TEST(!fs::exists(m.files().runtime));
            BOOST_TEST(!fs::exists(m.files().data));
            co_await m.remove(); // absent: no-op
            BOOST_TEST(!lines.empty());
        },
        180s);
    localvm::testing::leak_check_options o;
    o.directories = {h.root};
    auto left = localvm::testing::find_leaks(before, o);
    BOOST_TEST(left.clean(), "left behind:\n" << left.describe());
}

BOOST_AUTO_TEST_CASE(create_errors_leave_nothing_behind) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            localvm::qemu::manager m(ex, h.options());
            co_await expect_error(
                errc::not_found, [&] { return m.create(h.root / "nope.qcow2"); }, "nope.qcow2");

            // A raw base image gets a qcow2 overlay with backing format raw.
            co_await make_base(h, "raw");
            co_await m.create(h.base);
            localvm::process::options info;
            info.argv = {"qemu-img", "info", "--output=json", m.files().disk.string()};
            auto r = co_await localvm::process::run_checked(info);
            BOOST_TEST(r.out.find("\"backing-filename-format\": \"raw\"") != std::string::npos,
                       r.out);
            co_await m.remove();

            // Disk full: the overlay cannot be written; no partial file remains.
            auto full = h.root / "full";
            fs::create_directories(full);
            BOOST_REQUIRE(::mount("tmpfs", full.c_str(), "tmpfs", 0, "size=8k") == 0);
            auto o = h.options("small");
            o.data_dir = full;
            localvm::qemu::manager small(ex, o);
            // Fill what the directories left free.
            {
                std::ofstream fill(full / "filler");
                std::string block(1024, 'x');
                for (int i = 0; i < 64 && fill; ++i)
                    fill << block << std::flush;
            }
            std::string what;
            try {
                co_await small.create(h.base);
            } catch (const localvm::error& e) {
                what = e.what();
                BOOST_TEST(e.code() == errc::process_failed, what);
            }
            BOOST_TEST(!what.empty());
            BOOST_TEST(!co_await small.exists());
            for (auto& e : fs::directory_iterator(full / "small"))
                BOOST_FAIL("left behind: " << e.path());
            ::umount(full.c_str());
        },
        120s);
}

BOOST_AUTO_TEST_CASE(disk_size_reaches_qemu_img_only_as_a_byte_count) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h, "qcow2");
            for (const char* bad : {"-o", "20X", "1G,preallocation=full", "1.5G", "0"}) {
                auto o = h.options();
                o.disk_size = bad;
                localvm::qemu::manager m(ex, o);
                co_await expect_error(
                    errc::invalid_argument, [&] { return m.create(h.base); }, "disk_size");
                BOOST_TEST(!co_await m.exists(), bad);
            }
            auto o = h.options();
            o.disk_size = "96m";
            localvm::qemu::manager m(ex, o);
            co_await m.create(h.base);
            localvm::process::options info;
            info.argv = {"qemu-img", "info", "--output=json", m.files().disk.string()};
            auto r = co_await localvm::process::run_checked(info);
            BOOST_TEST(r.out.find("\"virtual-size\": 100663296") != std::string::npos, r.out);
            co_await m.remove();
        },
        60s);
}

BOOST_AUTO_TEST_CASE(bad_input_is_rejected_before_anything_runs) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            for (const char* bad : {"", "..", "a/b"}) {
                auto o = h.options();
                o.name = bad;
                BOOST_CHECK_EXCEPTION(localvm::qemu::manager(ex, o), localvm::error,
                                      [](const localvm::error& e) {
                                          return e.code() == errc::invalid_argument;
                                      });
            }
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            auto s = lvtest::small_vm();
            s.cpus = 0;
            co_await expect_error(errc::invalid_argument, [&] { return m.start(s); }, "cpus");
            s = lvtest::small_vm();
            s.memory = "lots";
            co_await expect_error(errc::invalid_argument, [&] { return m.start(s); }, "lots");
            s = lvtest::small_vm();
            s.ports = {{"localhost:1", 0, 22}};
            co_await expect_error(errc::invalid_argument, [&] { return m.start(s); },
                                  "localhost:1");
            s = lvtest::small_vm();
            s.boot = localvm::direct_boot{h.root / "no-kernel", "", ""};
            co_await expect_error(errc::not_found, [&] { return m.start(s); }, "no-kernel");
            s = lvtest::small_vm();
            s.ssh_authorized_key = "ssh-ed25519 AAAA\nevil: 1";
            co_await expect_error(errc::invalid_argument, [&] { return m.start(s); });
            BOOST_TEST(!co_await m.running());
            BOOST_TEST(!fs::exists(m.files().seed));

            localvm::qemu::manager ghost(ex, h.options("ghost"));
            co_await expect_error(errc::not_found, [&] { return ghost.start(lvtest::small_vm()); },
                                  "was not created");
            BOOST_TEST(!fs::exists(ghost.files().runtime), "start of an absent VM made its dirs");
            BOOST_TEST(!fs::exists(ghost.files().data), "start of an absent VM made its dirs");
            co_await expect_error(errc::not_running, [&] { return ghost.stop(); });
            localvm::qemu::manager never(ex, h.options("never-made"));
            co_await expect_error(errc::not_running, [&] { return never.stop(); });
            BOOST_TEST(!fs::exists(never.files().runtime), "stop of an absent VM made its dirs");
        },
        60s);
}

BOOST_AUTO_TEST_CASE(qemu_failing_during_start_reports_its_stderr) {
    lvtest::vm_home h;
    auto fake = h.root / "fake-qemu";
    {
        std::ofstream f(fake);
        f << "#!/bin/sh\necho 'fake-qemu: cannot set up guest memory' >&2\nexit 1\n";
    }
    fs::permissions(fake, fs::perms(0755));
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.qemu_binary = fake;
            localvm::qemu::manager m(ex, o);
            co_await m.create(h.base);
            co_await expect_error(errc::process_failed,
                                  [&] { return m.start(lvtest::small_vm()); },
                                  "cannot set up guest memory");
            BOOST_TEST(!co_await m.running());
            BOOST_TEST(!fs::exists(m.files().pidfile));
            BOOST_TEST(!fs::exists(m.files().state));

            auto o2 = h.options();
            o2.qemu_binary = h.root / "no-such-qemu";
            localvm::qemu::manager m2(ex, o2);
            co_await expect_error(errc::not_found, [&] { return m2.start(lvtest::small_vm()); },
                                  "no-such-qemu");
        },
        60s);
}

BOOST_AUTO_TEST_CASE(kill_9_is_recorded_and_start_works_again) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            co_await m.start(lvtest::small_vm());
            auto pid = co_await m.pid();
            BOOST_REQUIRE(pid);
            ::kill(*pid, SIGKILL);
            BOOST_TEST(co_await localvm::process::wait_exit(*pid, 10000ms));
            BOOST_TEST(!co_await m.running());
            BOOST_TEST(!(co_await m.pid()).has_value());
            auto st = co_await m.query();
            BOOST_REQUIRE(st.state);
            BOOST_TEST((st.state->last_end == end_reason::killed),
                       "last_end " << to_string(st.state->last_end) << " "
                                   << st.state->last_end_detail);
            co_await m.start(lvtest::small_vm());
            BOOST_TEST(co_await m.running());
            co_await m.stop();
        },
        120s);
}

BOOST_AUTO_TEST_CASE(vm_outlives_its_starter_and_starts_race_to_one_qemu) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);

            std::string out;
            BOOST_TEST(co_await run_starter(h, "start", &out) == 0);
            BOOST_TEST(co_await m.running());
            auto pid = co_await m.pid();
            BOOST_REQUIRE(pid);
            BOOST_TEST(std::stoi(out) == *pid);
            co_await m.stop();
            BOOST_TEST(!co_await m.running());

            // Two processes start the same VM at once: one QEMU, one already_running.
            auto a = run_starter(h, "start");
            auto b = run_starter(h, "start");
            using namespace asio::experimental::awaitable_operators;
            auto [ra, rb] = co_await (std::move(a) && std::move(b));
            BOOST_TEST(std::min(ra, rb) == 0);
            BOOST_TEST(std::max(ra, rb) == 3);
            BOOST_TEST(co_await m.running());
            // Stopped from yet another process.
            BOOST_TEST(co_await run_starter(h, "stop") == 0);
            BOOST_TEST(!co_await m.running());
            BOOST_TEST(co_await run_starter(h, "stop") == 4);
        },
        180s);
}
