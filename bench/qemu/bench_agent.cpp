// The guest agent against ssh on one boot of the cloud guest (TCG), side by
// side: a command's round trip (`exec` of `true` through the agent vs
// `shell("true")` through ssh, each a fresh connection as the calls make
// them), and copy throughput (`copy_in`/`copy_out` through the agent, 1 MiB
// and 4 MiB chunks in, vs `sync`, rsync over ssh, both ways), the runs of
// each kind interleaved.
// usage: bench_agent [RUNS] [MIB]   (the guest: test/guests/build cloud)
#include <localvm/qemu/manager.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "../../test/e2e/qemu/guest.hpp"
#include "../common/args.hpp"
#include "../common/stats.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

using bench_stats::median;

double ms_since(clk::time_point t) {
    return std::chrono::duration<double, std::milli>(clk::now() - t).count();
}

asio::awaitable<void> run(int runs, int mib) {
    auto ex = co_await asio::this_coro::executor;
    auto g = lve2e::load_guest("cloud");
    lve2e::home h;
    auto o = h.options("bench-agent");
    localvm::qemu::manager m(ex, o);
    co_await m.create(g["DISK"]);
    localvm::start_options s;
    s.cpus = 2;
    s.memory = "1G";
    s.boot = localvm::direct_boot{g["KERNEL"], g["INITRD"], g["CMDLINE"]};
    s.ports = {{"127.0.0.1", 0, 22}};
    s.ssh_authorized_key = h.public_key;
    s.user_data = "#cloud-config\n";
    co_await m.start(s);
    co_await m.wait_ready(900s, localvm::qemu::ready_mode::both);
    co_await m.shell("cloud-init status --wait >/dev/null", {});

    // Round trips, warmed up, interleaved.
    std::vector<std::string> t = {"true"};
    std::vector<double> agent_rt, ssh_rt;
    for (int i = 0; i < runs * 4 + 2; ++i) {
        auto t0 = clk::now();
        auto r = co_await m.exec(t, localvm::qemu::exec_options());
        const double a = ms_since(t0);
        t0 = clk::now();
        auto sr = co_await m.shell("true", {});
        const double b = ms_since(t0);
        if (r.exit_status != 0 || sr.exit_status != 0)
            throw std::runtime_error("true failed");
        if (i >= 2) {
            agent_rt.push_back(a);
            ssh_rt.push_back(b);
        }
    }
    std::printf("metric cloud_agent_exec_true_p50_ms %.1f ms\n", median(agent_rt));
    std::printf("metric cloud_ssh_shell_true_p50_ms %.1f ms\n", median(ssh_rt));
    std::printf("metric cloud_agent_exec_over_ssh_shell %.3f ratio\n",
                median(agent_rt) / median(ssh_rt));

    // Throughput.
    const auto src = h.root / "payload.bin";
    {
        std::mt19937 gen(7);
        std::string data(std::size_t(mib) << 20, '\0');
        for (auto& c : data)
            c = static_cast<char>(gen());
        std::ofstream(src, std::ios::binary) << data;
    }
    std::vector<double> in1, in4, out1, rsync, rsync_out;
    localvm::sync_options back;
    back.direction = localvm::sync_direction::from_guest;
    localvm::qemu::copy_options one, four;
    four.chunk_size = std::size_t(4) << 20;
    for (int i = 0; i < runs; ++i) {
        auto t0 = clk::now();
        co_await m.copy_in(src, "/tmp/agent.bin", one);
        in1.push_back(mib / (ms_since(t0) / 1000));
        t0 = clk::now();
        co_await m.copy_in(src, "/tmp/agent4.bin", four);
        in4.push_back(mib / (ms_since(t0) / 1000));
        t0 = clk::now();
        co_await m.copy_out("/tmp/agent.bin", h.root / "back.bin", one);
        out1.push_back(mib / (ms_since(t0) / 1000));
        co_await m.shell("rm -f /tmp/rsync.bin", {});
        t0 = clk::now();
        co_await m.sync(src, "/tmp/rsync.bin", localvm::sync_options());
        rsync.push_back(mib / (ms_since(t0) / 1000));
        fs::remove(h.root / "rsync-back.bin");
        t0 = clk::now();
        co_await m.sync("/tmp/rsync.bin", (h.root / "rsync-back.bin").string(), back);
        rsync_out.push_back(mib / (ms_since(t0) / 1000));
    }
    std::printf("metric cloud_agent_copy_in_1mib_chunks %.2f MiB/s\n", median(in1));
    std::printf("metric cloud_agent_copy_in_4mib_chunks %.2f MiB/s\n", median(in4));
    std::printf("metric cloud_agent_copy_out_1mib_chunks %.2f MiB/s\n", median(out1));
    std::printf("metric cloud_rsync_ssh_copy_in %.2f MiB/s\n", median(rsync));
    std::printf("metric cloud_rsync_ssh_copy_out %.2f MiB/s\n", median(rsync_out));
    std::printf("metric cloud_agent_copy_in_over_rsync %.3f ratio\n", median(in1) / median(rsync));
    std::printf("metric cloud_agent_copy_out_over_rsync %.3f ratio\n",
                median(out1) / median(rsync_out));
    co_await m.stop();
    co_await m.remove();
}

} // namespace

int main(int argc, char** argv) {
    const int runs = argc > 1 ? bench_args::number(argv[0], argv[1], "RUNS", 1) : 3;
    const int mib = argc > 2 ? bench_args::number(argv[0], argv[2], "MIB", 1) : 32;
    asio::io_context io;
    int rc = 0;
    asio::co_spawn(io, run(runs, mib), [&](std::exception_ptr e) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            std::cerr << "bench_agent: " << x.what() << "\n";
            rc = 1;
        }
    });
    io.run();
    return rc;
}
