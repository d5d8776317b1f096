// Runs one command next to a private libvirtd (private_libvirtd.hpp), for
// recording sessions for the unit tests (test/unit/libvirt/data/README.md):
// starts the daemon, runs `COMMAND ARGS...` with LIBVIRT_SOCKET set to the
// daemon's socket and its stdout and stderr passed through, kills the daemon
// (and every QEMU it started), and exits with the command's status.
// Usage: with_libvirtd COMMAND [ARGS...]. Exit 77 when a private libvirtd
// cannot run here (not root, no libvirtd, QEMU, unshare or setpriv).
#include <localvm/process/child.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

#include "private_libvirtd.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: with_libvirtd COMMAND [ARGS...]\n";
        return 2;
    }
    if (auto missing = libvirt_test::missing_tools(); !missing.empty()) {
        std::cerr << "with_libvirtd: " << missing << "\n";
        return 77;
    }
    asio::io_context ctx;
    libvirt_test::private_libvirtd daemon;
    int status = 1;
    std::exception_ptr failed;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            co_await daemon.start(300s);
            localvm::process::options o;
            o.argv.assign(argv + 1, argv + argc);
            o.env_overrides = {"LIBVIRT_SOCKET=" + daemon.socket()};
            o.out.mode = localvm::process::stream_mode::inherit;
            o.err.mode = localvm::process::stream_mode::inherit;
            auto r = co_await localvm::process::run(std::move(o));
            status = r.signal ? 128 + r.signal : r.exit_code;
            daemon.kill();
            co_await daemon.reap();
        },
        [&](std::exception_ptr e) { failed = e; });
    ctx.run();
    if (failed) {
        try {
            std::rethrow_exception(failed);
        } catch (const std::exception& e) {
            std::cerr << "with_libvirtd: " << e.what() << "\n";
            return 1;
        }
    }
    return status;
}
