// Start-to-ready of the tiny guest through both backends, side by side in
// one run: `qemu::manager` (QEMU on this host), `libvirt::manager` over a
// private libvirtd's local socket, and the same daemon through
// `qemu+ssh://root@127.0.0.1:PORT/...` (an sshd on a loopback port, as a
// remote host: SSH to the guest through it as a jump host). RUNS boots each
// (default 3), interleaved so that host load falls on all alike; the first
// remote boot uploads the kernel and initrd into the pool and is reported
// apart. Prints `metric NAME VALUE UNIT` lines: p50 of `start` returning and
// of start-to-ready (`wait_ready`), and each libvirt figure's ratio to the
// QEMU backend's. Needs root, libvirtd, sshd and nc (exit 77 otherwise) and
// the tiny guest (test/guests/build tiny).
// usage: bench_backends [RUNS]
#include <localvm/libvirt/manager.hpp>
#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <vector>

#include "../../test/e2e/qemu/guest.hpp"
#include "daemon_fixture.hpp"
#include "../common/args.hpp"
#include "../common/stats.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct timings {
    std::vector<double> start_ms, ready_ms;
};

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

using bench_stats::median;

// One boot: start, wait_ready, stop, timed; `m` was created before.
asio::awaitable<void> boot_once(localvm::manager& m, const localvm::start_options& s,
                                timings& t) {
    const auto t0 = std::chrono::steady_clock::now();
    co_await m.start(s);
    t.start_ms.push_back(ms_since(t0));
    co_await m.wait_ready(300s);
    t.ready_ms.push_back(ms_since(t0));
    co_await m.stop();
}

} // namespace

int main(int argc, char** argv) {
    const int runs = argc > 1 ? bench_args::number(argv[0], argv[1], "RUNS", 1) : 3;
    auto& daemon = libvirt_test::daemon_fixture::start(true);
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    std::map<std::string, timings> by;
    double first_remote_ready_ms = 0;
    try {
        localvm::testing::run_coroutine(
            [&]() -> asio::awaitable<void> {
                auto ex = co_await asio::this_coro::executor;
                const auto base = h.root / "base.qcow2";
                localvm::process::options mk;
                mk.argv = {"qemu-img", "create", "-q", "-f", "qcow2", base.string(), "64M"};
                co_await localvm::process::run_checked(mk);
                const auto s = lve2e::tiny_start(g, h);

                localvm::qemu::manager q(ex, h.options("bq"));
                auto through = [&](const std::string& uri, const std::string& name) {
                    localvm::libvirt::manager_options o;
                    o.uri = uri;
                    o.pool = "localvm-test";
                    o.vm = h.options(name);
                    return o;
                };
                localvm::libvirt::manager local(ex, through(daemon.local(), "bl"));
                localvm::libvirt::manager remote(ex, through(daemon.remote(), "br"));
                co_await q.create(base);
                co_await local.create(base);
                co_await remote.create(base);
                // The first remote start uploads the boot files: not a steady figure.
                {
                    timings first;
                    co_await boot_once(remote, s, first);
                    first_remote_ready_ms = first.ready_ms.front();
                }
                for (int i = 0; i < runs; ++i) {
                    co_await boot_once(q, s, by["qemu"]);
                    co_await boot_once(local, s, by["libvirt_local"]);
                    co_await boot_once(remote, s, by["libvirt_ssh"]);
                }
                co_await q.remove();
                co_await local.remove();
                co_await remote.remove();
            },
            std::chrono::minutes(60), "bench_backends");
    } catch (const std::exception& err) {
        std::cerr << "bench_backends: " << err.what() << "\n";
        return 1;
    }
    const double q_start = median(by["qemu"].start_ms), q_ready = median(by["qemu"].ready_ms);
    std::printf("metric backend_runs %d count\n", runs);
    std::printf("metric backend_qemu_start_p50_ms %.1f ms\n", q_start);
    std::printf("metric backend_qemu_start_to_ready_p50_ms %.1f ms\n", q_ready);
    for (const char* b : {"libvirt_local", "libvirt_ssh"}) {
        const double st = median(by[b].start_ms), rd = median(by[b].ready_ms);
        std::printf("metric backend_%s_start_p50_ms %.1f ms\n", b, st);
        std::printf("metric backend_%s_start_to_ready_p50_ms %.1f ms\n", b, rd);
        std::printf("metric backend_%s_start_vs_qemu %.2f x\n", b, st / q_start);
        std::printf("metric backend_%s_ready_vs_qemu %.2f x\n", b, rd / q_ready);
    }
    std::printf("metric backend_libvirt_ssh_first_start_to_ready_ms %.1f ms\n",
                first_remote_ready_ms);
    return 0;
}
