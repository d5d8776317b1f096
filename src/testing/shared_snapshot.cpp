#include <localvm/error.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/snapshot.hpp>
#include <localvm/testing/run.hpp>
#include <localvm/testing/shared_snapshot.hpp>

#include "remove_vm.hpp"

#include <boost/asio/awaitable.hpp>

#include <algorithm>

namespace localvm::testing {

namespace asio = boost::asio;

namespace {

// The clones' numbers go up to this many digits in the name check.
constexpr const char* widest_clone_suffix = "-9999";

} // namespace

shared_snapshot::shared_snapshot(snapshot_source source) : source_(std::move(source)) {
    auto& v = source_.vm;
    if (auto problem = qemu::check_name(v.name + widest_clone_suffix); !problem.empty())
        throw_error(errc::invalid_argument,
                    "shared_snapshot: source VM name '" + v.name + "' leaves no room for its "
                    "clones' names ('" + v.name + widest_clone_suffix + "'): " + problem);
    if (!v.start.networks.empty())
        throw_error(errc::invalid_argument,
                    "shared_snapshot: source VM '" + v.name +
                        "' joins virtual networks; its clones cannot (they would need the "
                        "same addresses)");
    if (!v.snapshot.empty())
        throw_error(errc::invalid_argument, "shared_snapshot: source VM '" + v.name +
                                                "' is itself a clone (vm_spec::snapshot '" +
                                                v.snapshot + "')");
    // The set's defaults, filled here so that the clones and the teardown
    // see the same directories.
    auto& o = v.options;
    if (o.name.empty())
        o.name = v.name;
    if (o.data_dir.empty())
        o.data_dir = set_.root() / "data";
    if (o.runtime_dir.empty())
        o.runtime_dir = set_.root() / "run";
    set_.add(v);
}

shared_snapshot::~shared_snapshot() {
    auto problems = teardown();
    if (!problems.empty() && set_.on_failure)
        set_.on_failure("localvm::testing::shared_snapshot teardown:\n" + problems);
}

void shared_snapshot::ensure_saved() {
    if (torn_down_)
        throw_error(errc::invalid_argument, "shared_snapshot used after teardown");
    if (saved_)
        return;
    const std::string& name = snapshot_name();
    if (boot_failure_) {
        try {
            std::rethrow_exception(boot_failure_);
        } catch (const boost::system::system_error& e) {
            throw localvm::error(e.code(), "the shared boot of vm '" + name +
                                               "' failed earlier, so there is no snapshot to "
                                               "clone; its error:\n" +
                                               e.what());
        }
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
        set_.run(
            [this, &name](vm_set& s) -> asio::awaitable<void> {
                auto& v = s[name];
                if (source_.prepare)
                    co_await source_.prepare(v);
                qemu::snapshot_options so;
                so.then = qemu::after_save::stop;
                pending p("save of vm '" + name + "' as snapshot " + name);
                co_await v.manager().snapshot(name, so);
            },
            source_.boot_deadline, "shared boot of vm '" + name + "' (boot, prepare, save)");
    } catch (const boost::system::system_error&) {
        boot_failure_ = std::current_exception();
        // Nothing of a failed boot idles while the other tests fail.
        auto problems = set_.remove(name);
        if (!problems.empty() && set_.on_failure)
            set_.on_failure("localvm::testing::shared_snapshot: removal of vm '" + name +
                            "' after its failed boot:\n" + problems);
        throw;
    }
    boot_time_ = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    saved_ = true;
    // The save stopped it; the snapshot has its own copy of the disk.
    auto problems = set_.remove(name);
    if (!problems.empty() && set_.on_failure)
        set_.on_failure("localvm::testing::shared_snapshot: removal of vm '" + name +
                        "' after its save:\n" + problems);
}

void shared_snapshot::run(std::function<asio::awaitable<void>(testing::vm&)> body,
                          std::chrono::milliseconds deadline, const std::string& what) {
    ensure_saved();
    auto spec = source_.vm;
    spec.name = snapshot_name() + "-" + std::to_string(++clones_);
    spec.options.name = spec.name;
    spec.snapshot = snapshot_name();
    if (source_.clone)
        source_.clone(spec);
    const std::string name = spec.name;
    set_.add(std::move(spec));
    std::exception_ptr failure;
    try {
        set_.run([&body, &name](vm_set& s) -> asio::awaitable<void> { co_await body(s[name]); },
                 deadline, what);
    } catch (...) {
        failure = std::current_exception();
    }
    auto problems = set_.remove(name);
    if (!problems.empty() && set_.on_failure)
        set_.on_failure("localvm::testing::shared_snapshot: removal of clone '" + name +
                        "':\n" + problems);
    if (failure)
        std::rethrow_exception(failure);
}

std::string shared_snapshot::teardown() {
    if (torn_down_)
        return {};
    torn_down_ = true;
    std::string problems;
    for (const auto& name : set_.names()) {
        try {
            problems += set_.remove(name);
        } catch (const std::exception& e) {
            problems += std::string(e.what()) + "\n";
        }
    }
    // The snapshots, each after the VMs made from it (a test's own clones
    // too) and after the snapshots saved from those (whose disk layers are
    // backed by its own): a pass deletes what nothing depends on any more.
    const auto& o = source_.vm.options;
    std::string refused;
    try {
        for (;;) {
            auto snaps = qemu::list_snapshots(o);
            refused.clear();
            if (snaps.empty())
                break;
            bool deleted = false;
            for (const auto& snap : snaps) {
                for (const auto& clone : snap.clones) {
                    auto co = vm_spec::test_options();
                    co.name = clone;
                    co.data_dir = o.data_dir;
                    co.runtime_dir = o.runtime_dir;
                    detail::remove_vm(problems, co);
                }
                try {
                    qemu::delete_snapshot(o, snap.name);
                    deleted = true;
                } catch (const std::exception& e) {
                    refused += std::string(e.what()) + "\n";
                }
            }
            if (!deleted)
                break;
        }
    } catch (const std::exception& e) {
        problems += std::string(e.what()) + "\n";
    }
    problems += refused;
    problems += set_.teardown();
    return problems;
}

} // namespace localvm::testing
