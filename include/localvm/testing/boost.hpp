// Boost.Test glue for the test kit: a per-test VM fixture, a suite-wide one,
// and failure reports in the test log. Header-only: include it from a test
// program that links Boost.Test.
#pragma once

#include <localvm/error.hpp>
#include <localvm/testing/error.hpp>
#include <localvm/testing/run.hpp>
#include <localvm/testing/shared_snapshot.hpp>
#include <localvm/testing/vm.hpp>

#include <boost/test/framework.hpp>
#include <boost/test/results_collector.hpp>
#include <boost/test/unit_test.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <memory>
#include <string>

namespace localvm::testing {

/// True when the running Boost.Test case has failed a check so far.
inline bool current_test_failed() {
    namespace ut = boost::unit_test;
    return !ut::results_collector.results(ut::framework::current_test_case().p_id).passed();
}

/// Makes `set` report to Boost.Test: after a run whose body threw nothing
/// but whose test case failed a check, and on teardown problems, the VMs'
/// console and QEMU stderr tails are logged as an error. (A run that throws
/// carries the same report in its exception, which Boost.Test prints.)
inline void report_to_boost_test(vm_set& set) {
    set.failed_check = current_test_failed;
    set.on_failure = [](const std::string& report) {
        BOOST_ERROR("localvm: what the test VMs said:\n" << report);
    };
}

/// Awaits `f()`, which must fail with `localvm::error` of `code` (an `errc`,
/// a `kit_errc` or any error_code): a Boost.Test check fails (fatally)
/// otherwise. Returns the error's `what()` ("" when none came).
template <class F>
boost::asio::awaitable<std::string> expect_error(boost::system::error_code code, F f) {
    try {
        co_await f();
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == code, "got " << e.what());
        co_return e.what();
    }
    BOOST_FAIL("expected error " << code.message());
    co_return "";
}

/// A fixture with a fresh `vm_set` named `vms` for each test case:
/// `BOOST_FIXTURE_TEST_CASE(name, localvm::testing::vm_fixture) { vms.add(...);
/// vms.run([&](vm_set& s) -> awaitable<void> { ... }); }`. Its VMs are
/// stopped and deleted when the test case ends, whatever happened.
struct vm_fixture {
    vm_set vms; ///< The test case's VMs.
    vm_fixture() { report_to_boost_test(vms); }
};

/// One `vm_set` shared by every test case of a suite, booted on the first
/// `run` and torn down when the suite ends. `Setup` is a type with
/// `static void setup(localvm::testing::vm_set&)` that adds the VMs:
///
///     BOOST_AUTO_TEST_SUITE(cluster, *boost::unit_test::fixture<suite_vms<my_setup>>())
///     BOOST_AUTO_TEST_CASE(t) { suite_vms<my_setup>::get().run(...); }
template <class Setup>
class suite_vms {
public:
    /// Makes the set and lets `Setup::setup` add its VMs.
    suite_vms() {
        slot() = std::make_unique<vm_set>();
        report_to_boost_test(*slot());
        Setup::setup(*slot());
    }
    /// Stops and deletes the VMs.
    ~suite_vms() { slot().reset(); }
    suite_vms(const suite_vms&) = delete;
    suite_vms& operator=(const suite_vms&) = delete;

    /// The suite's set. Throws `errc::not_found` outside the suite.
    static vm_set& get() {
        if (!slot())
            throw_error(errc::not_found, "suite_vms::get() outside its suite's fixture");
        return *slot();
    }

private:
    static std::unique_ptr<vm_set>& slot() {
        static std::unique_ptr<vm_set> set;
        return set;
    }
};

/// One `shared_snapshot` for a suite: its guest boots and is saved once, at
/// the suite's first `run`, and each test case runs on a fresh clone; the
/// clones and the snapshot are deleted when the suite ends. `Setup` is a
/// type with `static localvm::testing::snapshot_source source()`:
///
///     BOOST_AUTO_TEST_SUITE(s, *boost::unit_test::fixture<suite_snapshot<my_guest>>())
///     BOOST_AUTO_TEST_CASE(t) {
///         suite_snapshot<my_guest>::get().run([](vm& clone) -> awaitable<void> { ... });
///     }
///
/// A failed shared boot fails the test case that booted with its error, and
/// each later one at once saying so (see `shared_snapshot`).
template <class Setup>
class suite_snapshot {
public:
    /// Makes the shared snapshot (nothing boots yet).
    suite_snapshot() {
        slot() = std::make_unique<shared_snapshot>(Setup::source());
        report_to_boost_test(slot()->set());
    }
    /// Deletes the clones, the snapshots and the VMs' directory.
    ~suite_snapshot() { slot().reset(); }
    suite_snapshot(const suite_snapshot&) = delete;
    suite_snapshot& operator=(const suite_snapshot&) = delete;

    /// The suite's shared snapshot. Throws `errc::not_found` outside the suite.
    static shared_snapshot& get() {
        if (!slot())
            throw_error(errc::not_found, "suite_snapshot::get() outside its suite's fixture");
        return *slot();
    }

private:
    static std::unique_ptr<shared_snapshot>& slot() {
        static std::unique_ptr<shared_snapshot> shared;
        return shared;
    }
};

} // namespace localvm::testing
