// The test kit's shared snapshot against the tiny guest: one boot for a
// suite, each test on a fresh clone that sees what was prepared before the
// save and nothing of the other clones; the teardown deletes the clones,
// then the snapshots (one saved from a clone first); a failed shared boot
// fails the test that booted with its error and every later one at once.
#define BOOST_TEST_MODULE e2e_testing_shared_snapshot
#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/snapshot.hpp>
#include <localvm/testing/boost.hpp>

#include <boost/asio/this_coro.hpp>

#include <filesystem>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lt = localvm::testing;
namespace qemu = localvm::qemu;
using localvm::errc;
using namespace std::chrono_literals;

namespace {

lt::snapshot_source tiny_source(const std::string& name) {
    lt::snapshot_source src;
    src.vm.name = name;
    src.vm.start.cpus = 1;
    src.vm.start.memory = "512M";
    src.vm.start.boot = lt::guest_image::load("tiny").boot();
    src.prepare = [](lt::vm& v) -> asio::awaitable<void> {
        co_await v.expect_status("mkdir -p /tmp/marks && echo prepared > /tmp/marks/before-save");
    };
    return src;
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// VM directories under the set's runtime directory.
std::vector<std::string> vm_dirs(const fs::path& root) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& d : fs::directory_iterator(root / "run", ec))
        if (d.is_directory())
            out.push_back(d.path().filename().string());
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(one_boot_a_fresh_clone_per_run_and_a_teardown_in_order) {
    fs::path root;
    {
        lt::shared_snapshot shared(tiny_source("tiny"));
        lt::report_to_boost_test(shared.set());
        root = shared.set().root();
        const auto data = root / "data";
        std::vector<std::string> names;
        for (int i = 0; i < 2; ++i) {
            shared.run(
                [&](lt::vm& clone) -> asio::awaitable<void> {
                    names.push_back(clone.name());
                    // What prepare wrote before the save, and nothing of the
                    // clone before (each writes its own mark).
                    co_await clone.expect_output("cat /tmp/marks/before-save; ls /tmp/marks",
                                                 "prepared\nbefore-save\n");
                    co_await clone.expect_status("echo mine > /tmp/marks/" + clone.name());
                },
                5min);
            // The clone is gone after its run, the snapshot stays; the
            // source went after the save.
            BOOST_TEST(vm_dirs(root).empty());
            qemu::options o;
            o.data_dir = data;
            BOOST_TEST(qemu::list_snapshots(o).size() == 1u);
        }
        BOOST_TEST(names == (std::vector<std::string>{"tiny-1", "tiny-2"}));
        BOOST_TEST(shared.boot_time().count() > 0);

        // A test that saves its clone and leaves a clone of that behind: the
        // teardown deletes the clone of the clone, then its snapshot, then
        // the suite's.
        shared.run(
            [&](lt::vm& clone) -> asio::awaitable<void> {
                auto& m = clone.manager();
                co_await m.snapshot("nested", qemu::snapshot_options());
                auto o = m.config();
                o.name = "left-behind";
                qemu::manager c(co_await asio::this_coro::executor, o);
                co_await c.create_from_snapshot("nested");
            },
            5min);
        BOOST_TEST(fs::exists(data / "left-behind"));
        BOOST_TEST(fs::exists(data / "@snapshots" / "nested"));
        BOOST_TEST(fs::exists(data / "@snapshots" / "tiny"));
        auto problems = shared.teardown();
        BOOST_TEST(problems.empty(), problems);
        BOOST_TEST(shared.teardown().empty()); // idempotent
    }
    BOOST_TEST(!fs::exists(root));
}

BOOST_AUTO_TEST_CASE(a_failed_shared_boot_fails_every_run_at_once) {
    auto src = tiny_source("broken");
    src.prepare = [](lt::vm& v) -> asio::awaitable<void> {
        co_await v.expect_status("exit 3"); // fails: kit_errc::check_failed
    };
    lt::shared_snapshot shared(std::move(src));
    const auto root = shared.set().root();
    int bodies = 0;
    auto body = [&](lt::vm&) -> asio::awaitable<void> {
        ++bodies;
        co_return;
    };
    std::string first, second;
    try {
        shared.run(body, 5min);
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == lt::kit_errc::check_failed, e.what());
        first = e.what();
    }
    BOOST_TEST(has(first, "`exit 3` on vm 'broken' exited with 3"), first);
    BOOST_TEST(has(first, "vm 'broken': serial console"), first); // the console tail
    // Nothing of the failed boot runs on.
    BOOST_TEST(vm_dirs(root).empty());
    const auto t0 = std::chrono::steady_clock::now();
    try {
        shared.run(body, 5min);
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == lt::kit_errc::check_failed, e.what());
        second = e.what();
    }
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < 5s)); // at once, no boot
    BOOST_TEST(has(second, "the shared boot of vm 'broken' failed earlier"), second);
    BOOST_TEST(has(second, "`exit 3` on vm 'broken' exited with 3"), second);
    BOOST_TEST(bodies == 0);
    BOOST_TEST(shared.teardown().empty());
    BOOST_TEST(!fs::exists(root));
}

BOOST_AUTO_TEST_CASE(an_invalid_source_is_refused) {
    auto networked = tiny_source("net");
    localvm::network_attachment lan;
    lan.network = "lan";
    lan.address = "10.9.0.5/24";
    networked.vm.start.networks = {lan};
    try {
        lt::shared_snapshot s(std::move(networked));
        BOOST_FAIL("no error");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == errc::invalid_argument);
        BOOST_TEST(has(e.what(), "joins virtual networks"), e.what());
    }
    auto long_name = tiny_source(std::string(60, 'a'));
    try {
        lt::shared_snapshot s(std::move(long_name));
        BOOST_FAIL("no error");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == errc::invalid_argument);
        BOOST_TEST(has(e.what(), "leaves no room for its clones' names"), e.what());
    }
}
