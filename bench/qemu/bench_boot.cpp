// Boot-to-ready time of the tiny test guest under TCG: from `start` to the
// first successful SSH login (`wait_ready`), median of N boots (default 5),
// printed as `metric NAME VALUE UNIT` lines.
// usage: bench_boot [RUNS]    (the guest: test/guests/build tiny)
#include "../../test/e2e/qemu/guest.hpp"

#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <vector>
#include "../common/args.hpp"
#include "../common/stats.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
    const int runs = argc > 1 ? bench_args::number(argv[0], argv[1], "RUNS", 1) : 5;
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    std::vector<double> start_ms, ready_ms;
    int status = 0;
    asio::io_context ctx;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            localvm::process::options base;
            base.argv = {"qemu-img", "create", "-q", "-f", "qcow2",
                         (h.root / "base.qcow2").string(), "64M"};
            co_await localvm::process::run_checked(base);
            localvm::qemu::manager m(ex, h.options("bench"));
            co_await m.create(h.root / "base.qcow2");
            for (int i = 0; i < runs; ++i) {
                auto t0 = std::chrono::steady_clock::now();
                co_await m.start(lve2e::tiny_start(g, h));
                auto t1 = std::chrono::steady_clock::now();
                co_await m.wait_ready(300s);
                auto t2 = std::chrono::steady_clock::now();
                co_await m.stop();
                start_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
                ready_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
            }
            co_await m.remove();
        },
        [&](std::exception_ptr e) {
            if (!e)
                return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& err) {
                std::cerr << "bench_boot: " << err.what() << "\n";
                status = 1;
            }
        });
    ctx.run();
    if (status != 0 || ready_ms.empty())
        return 1;
    using bench_stats::median;
    std::printf("metric tiny_start_to_qemu_running_p50_ms %.1f ms\n", median(start_ms));
    std::printf("metric tiny_boot_to_ready_p50_ms %.1f ms\n", median(ready_ms));
    std::printf("metric tiny_boot_to_ready_max_ms %.1f ms\n",
                *std::max_element(ready_ms.begin(), ready_ms.end()));
    std::printf("metric tiny_boot_runs %d count\n", runs);
    return 0;
}
