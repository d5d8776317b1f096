// A test program's private libvirtd, started once by its global fixture, and
// optionally the loopback sshd in front of it (the "remote host" route).
// Both live until the program exits, on an io_context of their own that
// outlives them: their child processes are bound to it. A missing tool (or
// not being root) exits the program with 77, meson's "skipped".
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "loopback_sshd.hpp"
#include "private_libvirtd.hpp"

namespace libvirt_test {

struct daemon_fixture {
    boost::asio::io_context ctx;
    private_libvirtd daemon;
    loopback_sshd sshd{daemon};

    /// The daemon's local socket URI, and the ssh one (after `start(true)`).
    std::string local() const { return daemon.uri(); }
    std::string remote() const { return sshd.uri(); }

    /// Starts the program's one fixture (later calls return it): the daemon
    /// (its first start on a machine probes QEMU's capabilities, minutes
    /// under load), then, `with_sshd`, sshd. Prints how long it took.
    static daemon_fixture& start(bool with_sshd) {
        auto missing = missing_tools();
        if (missing.empty() && with_sshd)
            missing = missing_ssh_tools();
        if (!missing.empty()) {
            std::cerr << "skipping: " << missing << "\n";
            std::_Exit(77);
        }
        static daemon_fixture f;
        const auto t0 = std::chrono::steady_clock::now();
        std::exception_ptr failed;
        bool done = false;
        auto both = [&]() -> boost::asio::awaitable<void> {
            co_await f.daemon.start(std::chrono::seconds(300));
            if (with_sshd)
                co_await f.sshd.start();
        };
        boost::asio::co_spawn(f.ctx, both(), [&](std::exception_ptr e) {
            failed = e;
            done = true;
        });
        while (!done)
            f.ctx.run_one();
        if (failed)
            std::rethrow_exception(failed);
        std::cerr << "private libvirtd ready after "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - t0)
                         .count()
                  << " ms\n";
        return f;
    }
};

} // namespace libvirt_test
