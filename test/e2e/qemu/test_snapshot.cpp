#define BOOST_TEST_MODULE e2e_snapshot
// Snapshots and clones on the tiny guest: save a running VM, start two
// clones of it at once, each with the state from before the save and its
// own disk; mismatches refused; a failed save leaves the VM running.
#include "guest.hpp"

#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/snapshot.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <fstream>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace qemu = localvm::qemu;
using localvm::errc;
using localvm::testing::expect_error;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

asio::awaitable<fs::path> blank_base(const lve2e::home& h) {
    auto base = h.root / "base.qcow2";
    if (!fs::exists(base)) {
        localvm::process::options o;
        o.argv = {"qemu-img", "create", "-q", "-f", "qcow2", base.string(), "64M"};
        co_await localvm::process::run_checked(o);
    }
    co_return base;
}

asio::awaitable<std::string> run(qemu::manager& m, std::string command) {
    auto r = co_await m.shell(std::move(command), {});
    BOOST_TEST(r.exit_status == 0, r.output);
    co_return r.output;
}

// The first bytes of the guest's disk, written with dd through the page cache's back.
const std::string read_disk =
    "sudo dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d '\\000\\n'; echo";
std::string write_disk(const std::string& text) {
    return "printf '" + text + "' | sudo dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null";
}

} // namespace

BOOST_AUTO_TEST_CASE(save_then_two_clones_at_once_each_with_its_own_disk) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto base = co_await blank_base(h);
            qemu::manager src(ex, h.options("src"));
            co_await src.create(base);
            auto start = lve2e::tiny_start(g, h);
            co_await src.start(start);
            co_await src.wait_ready(180s);
            co_await run(src, "echo before-save > /tmp/marker && " + write_disk("disk-before-save"));

            auto info = co_await src.snapshot("snap1");
            BOOST_TEST(info.name == "snap1");
            BOOST_TEST(info.source_vm == "src");
            BOOST_TEST(info.machine.rfind("pc-q35-", 0) == 0u, info.machine);
            BOOST_TEST(info.memory_mib == 512u);
            BOOST_TEST(info.state_bytes > 0u);
            BOOST_TEST(info.files.size() == 2u); // kernel and initrd
            BOOST_TEST(fs::exists(info.dir / "state.mig"));
            BOOST_TEST_MESSAGE("save: " << info.save_ms << " ms, state " << info.state_bytes
                                        << " bytes, disk layer " << info.disk_bytes << " bytes");
            // No temporary left beside it.
            std::size_t entries = 0;
            for ([[maybe_unused]] auto& e : fs::directory_iterator(info.dir.parent_path()))
                ++entries;
            BOOST_TEST(entries == 1u);

            // The original runs on, and its later writes stay its own.
            BOOST_TEST(co_await src.running());
            co_await run(src, "echo after-save > /tmp/marker && " + write_disk("disk-of-src"));

            // A second save under the same name is refused.
            co_await expect_error(errc::already_exists, [&] { return src.snapshot("snap1"); });

            qemu::manager a(ex, h.options("clone-a"));
            qemu::manager b(ex, h.options("clone-b"));
            co_await a.create_from_snapshot("snap1");
            co_await b.create_from_snapshot("snap1");
            // The tiny guest has no agent: QEMU says its port is closed, and
            // the restored clock is left as saved, without waiting for an agent.
            std::vector<std::string> clock_stages;
            a.set_stage_sink([&](qemu::boot_stage st, std::string_view detail) {
                if (st == qemu::boot_stage::guest_clock)
                    clock_stages.emplace_back(detail);
            });
            BOOST_TEST((qemu::inspect_snapshot(h.options("x"), "snap1").clones ==
                        std::vector<std::string>{"clone-a", "clone-b"}));
            auto t0 = std::chrono::steady_clock::now();
            co_await (a.start(start) && b.start(start));
            co_await (a.wait_ready(60s) && b.wait_ready(60s));
            BOOST_TEST_MESSAGE("two clones restored and ready in "
                               << std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - t0)
                                      .count()
                               << " ms");
            BOOST_REQUIRE(clock_stages.size() == 1u);
            BOOST_TEST(clock_stages[0] == "not set: no guest agent has its port open; the clock "
                                          "reads the time of the save");
            // Each has its own forward.
            auto pa = co_await a.ports(), pb = co_await b.ports(), ps = co_await src.ports();
            BOOST_TEST(pa[0].host_port != pb[0].host_port);
            BOOST_TEST(pa[0].host_port != ps[0].host_port);

            BOOST_TEST(co_await run(a, "cat /tmp/marker") == "before-save\n");
            BOOST_TEST(co_await run(b, "cat /tmp/marker") == "before-save\n");
            BOOST_TEST(co_await run(a, read_disk) == "disk-before-save\n");
            co_await run(a, "echo clone-a > /tmp/marker && " + write_disk("disk-of-a"));
            BOOST_TEST(co_await run(b, "cat /tmp/marker") == "before-save\n");
            BOOST_TEST(co_await run(b, read_disk) == "disk-before-save\n");
            BOOST_TEST(co_await run(a, read_disk) == "disk-of-a\n");
            BOOST_TEST(co_await run(src, "cat /tmp/marker") == "after-save\n");
            BOOST_TEST(co_await run(src, read_disk) == "disk-of-src\n");

            // The snapshot stays while clones depend on it.
            BOOST_CHECK_EXCEPTION(qemu::delete_snapshot(h.options("x"), "snap1"), localvm::error,
                                  [](const localvm::error& e) {
                                      return e.code() == make_error_code(errc::busy) &&
                                             std::string(e.what()).find("clone-a") !=
                                                 std::string::npos;
                                  });
            co_await (a.stop() && b.stop());
            // A restored clone is a VM of its own: its next start boots its
            // own disk cold instead of restoring the saved memory onto a
            // disk that changed since (the guest's RAM-only root has no
            // marker; the disk keeps what the clone wrote).
            std::vector<std::string> restart_stages;
            a.set_stage_sink([&](qemu::boot_stage st, std::string_view) {
                restart_stages.emplace_back(qemu::to_string(st));
            });
            co_await a.start(start);
            co_await a.wait_ready(180s);
            BOOST_TEST(co_await run(a, "cat /tmp/marker 2>/dev/null || echo none") == "none\n");
            BOOST_TEST(co_await run(a, read_disk) == "disk-of-a\n");
            BOOST_TEST(std::count(restart_stages.begin(), restart_stages.end(), "guest-clock") == 0);
            co_await a.stop();
            co_await a.remove();
            co_await b.remove();
            auto listed = qemu::list_snapshots(h.options("x"));
            BOOST_REQUIRE(listed.size() == 1u);
            BOOST_TEST(listed[0].clones.empty());
            qemu::delete_snapshot(h.options("x"), "snap1");
            BOOST_TEST(qemu::list_snapshots(h.options("x")).empty());
            co_await src.stop();
        },
        900s);
}

BOOST_AUTO_TEST_CASE(mismatches_are_refused_and_a_failed_save_leaves_the_vm_running) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto base = co_await blank_base(h);
            // A kernel of our own, so that it can be changed.
            auto start = lve2e::tiny_start(g, h);
            auto kernel = h.root / "vmlinux";
            fs::copy_file(start.boot->kernel, kernel);
            start.boot->kernel = kernel;
            qemu::manager src(ex, h.options("src"));
            co_await src.create(base);
            co_await src.start(start);
            co_await src.wait_ready(180s);

            // A save that cannot finish in time is cancelled: no snapshot,
            // the VM runs on.
            qemu::snapshot_options quick;
            quick.timeout = 1ms;
            co_await expect_error(errc::timeout, [&] { return src.snapshot("late", quick); });
            BOOST_TEST(qemu::list_snapshots(h.options("x")).empty());
            BOOST_TEST(fs::is_empty(qemu::snapshot_root(h.options("x"))));
            BOOST_TEST(co_await src.running());
            co_await run(src, "true");

            auto info = co_await src.snapshot("snap");
            BOOST_TEST(info.save_ms >= 0);
            qemu::manager c(ex, h.options("clone"));
            co_await c.create_from_snapshot("snap");

            // Other memory size.
            auto bigger = start;
            bigger.memory = "1G";
            try {
                co_await c.start(bigger);
                BOOST_FAIL("a clone started with other memory");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == make_error_code(errc::unsupported));
                BOOST_TEST(std::string(e.what()).find("memory: the snapshot has 512 MiB") !=
                               std::string::npos,
                           e.what());
            }
            BOOST_TEST(!(co_await c.running()));

            // The kernel file changed since the save.
            {
                std::ofstream(kernel, std::ios::app) << "changed";
            }
            try {
                co_await c.start(start);
                BOOST_FAIL("a clone started with a changed kernel");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == make_error_code(errc::unsupported));
                BOOST_TEST(std::string(e.what()).find(kernel.string() + " changed") !=
                               std::string::npos,
                           e.what());
            }
            BOOST_TEST(!(co_await c.running()));
            co_await src.stop();
        },
        600s);
}

// The test kit: a suite boots its guest once and saves it; each test gets
// a fresh clone and discards it.
BOOST_AUTO_TEST_CASE(the_kit_boots_once_and_gives_each_test_a_clone) {
    auto g = lve2e::load_guest("tiny");
    localvm::testing::vm_set set;
    localvm::start_options start;
    start.cpus = 1;
    start.memory = "512M";
    start.boot = g.boot();
    localvm::testing::vm_spec source;
    source.name = "source";
    source.start = start;
    set.add(source);
    set.run(
        [](localvm::testing::vm_set& s) -> asio::awaitable<void> {
            co_await s["source"].expect_status("echo booted-once > /tmp/marker");
            co_await s["source"].manager().snapshot("suite");
            co_await s.discard("source"); // the clones need only the snapshot
        },
        5min);
    for (int i = 0; i < 2; ++i) {
        localvm::testing::vm_spec clone;
        clone.name = "test-" + std::to_string(i);
        clone.snapshot = "suite";
        clone.start = start;
        set.add(clone);
        const std::string name = clone.name;
        set.run(
            [&name](localvm::testing::vm_set& s) -> asio::awaitable<void> {
                co_await s[name].expect_output("cat /tmp/marker", "booted-once\n");
                co_await s[name].expect_status("echo dirty > /tmp/marker");
                co_await s.discard(name);
            },
            2min);
        BOOST_TEST(set.names().empty());
    }
}
