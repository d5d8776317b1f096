// Shared setup of the QEMU backend's integration tests: a temporary VM home,
// a blank base image, and options that run QEMU with TCG and no guest OS
// (UEFI firmware with nothing to boot: it runs, and ignores ACPI); reading a
// file whole, expecting an error; and the suite-wide check that nothing is
// left behind.
#pragma once

#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/testing/boost.hpp>
#include <localvm/testing/leaks.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

namespace lvtest {

// The test program's own directory: every vm_home lives below it, so that
// the leak check can tell this program's QEMUs and sockets from those of
// other test programs running at the same time.
inline const std::filesystem::path& suite_root() {
    static const std::filesystem::path root = [] {
        char tmpl[] = "/tmp/lvq-XXXXXX";
        if (!::mkdtemp(tmpl))
            localvm::throw_error(localvm::errc::io_error, "mkdtemp /tmp/lvq-XXXXXX failed");
        return std::filesystem::path(tmpl);
    }();
    return root;
}

// A VM home below suite_root(). It stays until the suite ends: a socket
// left in it is then still there for the leak check to name.
struct vm_home {
    std::filesystem::path root;
    std::filesystem::path base;

    vm_home() {
        auto tmpl = (suite_root() / "t-XXXXXX").string();
        if (!::mkdtemp(tmpl.data()))
            localvm::throw_error(localvm::errc::io_error, "mkdtemp " + tmpl + " failed");
        root = tmpl;
        base = root / "base.qcow2";
    }

    localvm::qemu::options options(const std::string& name = "vm") const {
        localvm::qemu::options o;
        o.name = name;
        o.data_dir = root / "data";
        o.runtime_dir = root / "run";
        o.accel = localvm::qemu::accelerator::tcg;
        o.net = localvm::qemu::network::restricted;
        o.stop.powerdown_timeout = std::chrono::seconds(1);
        // No guest OS, so no agent: its stop rung would only add its 3 s
        // (test_agent_channel tests that rung).
        o.stop.agent_timeout = std::chrono::milliseconds(0);
        return o;
    }
};

// Makes `h.base`: a blank 64 MiB image of `format` ("qcow2", "raw").
inline boost::asio::awaitable<void> make_base(const vm_home& h, std::string format = "qcow2") {
    localvm::process::options o;
    o.argv = {"qemu-img", "create", "-q", "-f", format, h.base.string(), "64M"};
    co_await localvm::process::run_checked(o);
}

// The bytes of file `p`; "" when it cannot be read.
inline std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Awaits `f()`, which must fail with `code` (the kit's expect_error) and,
// when `needle` is given, with a message that contains it. Returns the
// message.
template <class F>
boost::asio::awaitable<std::string> expect_error(localvm::errc code, F f, std::string needle = {}) {
    auto what = co_await localvm::testing::expect_error(code, std::move(f));
    if (!needle.empty())
        BOOST_TEST(what.find(needle) != std::string::npos,
                   "\"" << needle << "\" not in: " << what);
    co_return what;
}

inline localvm::start_options small_vm() {
    localvm::start_options s;
    s.memory = "128M";
    s.cpus = 1;
    s.ports = {{"127.0.0.1", 0, 22}};
    s.user_data = "#!/bin/sh\necho hello\n";
    return s;
}

// Global fixture (BOOST_TEST_GLOBAL_FIXTURE): fails the program when, after
// its last test, an fd, a child or zombie, a process working in
// suite_root() (a QEMU) or a socket file there is left, naming each; then
// kills such processes and removes suite_root().
struct leak_check {
    localvm::testing::resource_snapshot before;

    void setup() {
        suite_root();
        before = localvm::testing::resource_snapshot::take();
    }
    void teardown() {
        localvm::testing::leak_check_options o;
        o.directories = {suite_root()};
        auto report = localvm::testing::find_leaks(before, o);
        BOOST_TEST(report.clean(), "left behind by the tests:\n" << report.describe());
        for (const auto& p : report.processes)
            ::kill(p.pid, SIGKILL);
        for (const auto& c : report.children) {
            ::kill(c.pid, SIGKILL);
            ::waitpid(c.pid, nullptr, 0);
        }
        std::error_code ec;
        std::filesystem::remove_all(suite_root(), ec);
    }
};

} // namespace lvtest
