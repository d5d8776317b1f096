// Cold boot vs clone-restore of the tiny test guest under TCG, side by side
// in one run: from `start` (cold) or `create_from_snapshot` (restore) to the
// first successful shell("true"); the save's time and size; restores of 1,
// 2 and 4 clones started at once. Printed as `metric NAME VALUE UNIT` lines.
// usage: bench_snapshot [RUNS]    (the guest: test/guests/build tiny)
#include "../../test/e2e/qemu/guest.hpp"

#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/snapshot.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <vector>

namespace asio = boost::asio;
namespace qemu = localvm::qemu;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

asio::awaitable<void> shell_true(qemu::manager& m) {
    auto r = co_await m.shell("true", {});
    if (r.exit_status != 0)
        throw std::runtime_error("shell(\"true\") exited " + std::to_string(r.exit_status));
}

// One clone from creation to its first successful shell.
asio::awaitable<void> restore_one(qemu::manager& m, localvm::start_options so) {
    co_await m.create_from_snapshot("bench");
    co_await m.start(so);
    co_await m.wait_ready(120s);
    co_await shell_true(m);
}

// `n` clones at once; the wall time until every one answered, in ms.
asio::awaitable<double> restore_many(const lve2e::home& h, const localvm::start_options& so,
                                     int n, int round) {
    auto ex = co_await asio::this_coro::executor;
    std::vector<std::unique_ptr<qemu::manager>> ms;
    for (int i = 0; i < n; ++i)
        ms.push_back(std::make_unique<qemu::manager>(
            ex, h.options("c" + std::to_string(round) + "-" + std::to_string(i))));
    using op = decltype(asio::co_spawn(ex, restore_one(*ms[0], so), asio::deferred));
    std::vector<op> ops;
    for (auto& m : ms)
        ops.push_back(asio::co_spawn(ex, restore_one(*m, so), asio::deferred));
    auto t0 = clock_type::now();
    auto [order, errors] = co_await asio::experimental::make_parallel_group(std::move(ops))
                               .async_wait(asio::experimental::wait_for_all(),
                                           asio::use_awaitable);
    double took = ms_since(t0);
    for (auto& m : ms) {
        if (co_await m->running())
            co_await m->stop();
        co_await m->remove();
    }
    for (auto& e : errors)
        if (e)
            std::rethrow_exception(e);
    co_return took;
}

} // namespace

int main(int argc, char** argv) {
    int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
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
            auto so = lve2e::tiny_start(g, h);

            qemu::manager src(ex, h.options("source"));
            co_await src.create(h.root / "base.qcow2");
            std::vector<double> cold;
            for (int i = 0; i < runs; ++i) {
                auto t0 = clock_type::now();
                co_await src.start(so);
                co_await src.wait_ready(300s);
                co_await shell_true(src);
                cold.push_back(ms_since(t0));
                if (i + 1 < runs)
                    co_await src.stop();
            }

            auto t0 = clock_type::now();
            auto info = co_await src.snapshot("bench");
            double save = ms_since(t0);
            co_await src.stop();

            std::vector<double> one, create_ms, start_ms, ready_ms;
            for (int i = 0; i < runs; ++i) {
                qemu::manager c(ex, h.options("one-" + std::to_string(i)));
                auto a = clock_type::now();
                co_await c.create_from_snapshot("bench");
                create_ms.push_back(ms_since(a));
                auto b = clock_type::now();
                co_await c.start(so);
                start_ms.push_back(ms_since(b));
                auto d = clock_type::now();
                co_await c.wait_ready(120s);
                co_await shell_true(c);
                ready_ms.push_back(ms_since(d));
                one.push_back(ms_since(a));
                co_await c.stop();
                co_await c.remove();
            }
            double two = co_await restore_many(h, so, 2, 2);
            double four = co_await restore_many(h, so, 4, 4);
            qemu::delete_snapshot(h.options("source"), "bench");
            co_await src.remove();

            std::printf("metric tiny_cold_boot_to_shell_p50_ms %.1f ms\n", median(cold));
            std::printf("metric tiny_clone_restore_to_shell_p50_ms %.1f ms\n", median(one));
            std::printf("metric tiny_cold_over_restore %.1f ratio\n", median(cold) / median(one));
            std::printf("metric tiny_restore_create_p50_ms %.1f ms\n", median(create_ms));
            std::printf("metric tiny_restore_start_p50_ms %.1f ms\n", median(start_ms));
            std::printf("metric tiny_restore_start_to_shell_p50_ms %.1f ms\n", median(ready_ms));
            std::printf("metric tiny_save_ms %.1f ms\n", save);
            std::printf("metric tiny_save_guest_paused_ms %lld ms\n",
                        static_cast<long long>(info.save_ms));
            std::printf("metric tiny_snapshot_state_bytes %llu bytes\n",
                        static_cast<unsigned long long>(info.state_bytes));
            std::printf("metric tiny_snapshot_disk_bytes %llu bytes\n",
                        static_cast<unsigned long long>(info.disk_bytes));
            std::printf("metric tiny_restore_2_at_once_ms %.1f ms\n", two);
            std::printf("metric tiny_restore_4_at_once_ms %.1f ms\n", four);
            std::printf("metric tiny_snapshot_runs %d count\n", runs);
        },
        [&](std::exception_ptr e) {
            if (!e)
                return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& err) {
                std::cerr << "bench_snapshot: " << err.what() << "\n";
                status = 1;
            }
        });
    ctx.run();
    return status;
}
