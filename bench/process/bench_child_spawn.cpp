// What starting a child process (process::run: qemu-img, ssh, ssh-keygen,
// rsync are run this way) costs the starter as its heap grows. A test
// harness may hold gigabytes; a start must not cost in proportion.
// For each heap size (MiB, touched so it is resident), `ROUNDS` runs of
// /bin/true, one after the other, side by side with the baseline: the same
// program by glibc's posix_spawn (which shares the starter's memory until
// exec, as vfork does) and waitpid. Per run: the wall time, and the CPU
// time of this process (RUSAGE_SELF: what the starter's thread pays, page
// table copies and copy-on-write faults included).
// Prints `metric NAME VALUE UNIT` lines, and a `goal` line: run's CPU per
// start at the largest heap within 2x of the smallest heap's.
// usage: bench_child_spawn [ROUNDS [HEAP_MIB...]]   (default 200; 0 512 2048)
#include <localvm/process/child.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../common/args.hpp"

extern char** environ;

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

double self_cpu_ms() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
    return ms(u.ru_utime) + ms(u.ru_stime);
}

// A resident heap of `mib` MiB, every page written (private, dirty: what a
// fork has to share copy-on-write).
struct heap {
    void* p = MAP_FAILED;
    std::size_t bytes;
    explicit heap(std::size_t mib)
        : bytes(mib << 20) {
        if (!bytes)
            return;
        p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            throw std::runtime_error("cannot map the heap");
        std::memset(p, 1, bytes);
    }
    ~heap() {
        if (p != MAP_FAILED)
            ::munmap(p, bytes);
    }
    heap(const heap&) = delete;
    heap& operator=(const heap&) = delete;
};

struct cost {
    double wall_ms = 0, cpu_ms = 0; // per run
};

// This process's wall and CPU time from its construction on, per round.
struct stopwatch {
    const double cpu0 = self_cpu_ms();
    const clock_type::time_point t0 = clock_type::now();
    cost per(int rounds) const {
        const double wall = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        return {wall / rounds, (self_cpu_ms() - cpu0) / rounds};
    }
};

cost by_localvm(int rounds) {
    cost c;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            localvm::process::options o;
            o.argv = {"/bin/true"};
            const stopwatch w;
            for (int i = 0; i < rounds; ++i) {
                auto r = co_await localvm::process::run(o);
                if (!r.success())
                    throw std::runtime_error("/bin/true failed");
            }
            c = w.per(rounds);
        },
        std::chrono::minutes(10));
    return c;
}

cost by_posix_spawn(int rounds) {
    char arg0[] = "/bin/true";
    char* argv[] = {arg0, nullptr};
    const stopwatch w;
    for (int i = 0; i < rounds; ++i) {
        pid_t pid = -1;
        if (int e = ::posix_spawn(&pid, arg0, nullptr, nullptr, argv, environ))
            throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(e));
        int st = 0;
        while (::waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                throw std::runtime_error("waitpid");
    }
    return w.per(rounds);
}

void metric(const std::string& name, double v, const char* unit) {
    std::printf("metric %s %.3f %s\n", name.c_str(), v, unit);
}

} // namespace

int main(int argc, char** argv) try {
    const int rounds = argc > 1 ? bench_args::number(argv[0], argv[1], "ROUNDS", 1) : 200;
    std::vector<std::size_t> heaps;
    for (int i = 2; i < argc; ++i)
        heaps.push_back(
            static_cast<std::size_t>(bench_args::number(argv[0], argv[i], "HEAP_MIB", 0, 65536)));
    if (heaps.empty())
        heaps = {0, 512, 2048};

    std::vector<double> localvm_cpu;
    for (std::size_t mib : heaps) {
        heap h(mib);
        const std::string p = "child_spawn_heap" + std::to_string(mib) + "mib_";
        by_localvm(5); // warm: the io_context, the program's pages
        // Alternating halves, so that a noisy moment hits both sides.
        cost a1 = by_localvm(rounds / 2), b1 = by_posix_spawn(rounds / 2);
        cost b2 = by_posix_spawn(rounds - rounds / 2), a2 = by_localvm(rounds - rounds / 2);
        auto mean = [&](cost x, cost y) {
            const int n1 = rounds / 2, n2 = rounds - rounds / 2;
            return cost{(x.wall_ms * n1 + y.wall_ms * n2) / rounds,
                        (x.cpu_ms * n1 + y.cpu_ms * n2) / rounds};
        };
        const cost a = mean(a1, a2), b = mean(b1, b2);
        metric(p + "run_wall_ms", a.wall_ms, "ms");
        metric(p + "run_cpu_ms", a.cpu_ms, "ms");
        metric(p + "posix_spawn_wall_ms", b.wall_ms, "ms");
        metric(p + "posix_spawn_cpu_ms", b.cpu_ms, "ms");
        localvm_cpu.push_back(a.cpu_ms);
        std::fflush(stdout);
    }
    const auto smallest = std::min_element(heaps.begin(), heaps.end()) - heaps.begin();
    const auto largest = std::max_element(heaps.begin(), heaps.end()) - heaps.begin();
    const double ratio = localvm_cpu[largest] / std::max(localvm_cpu[smallest], 1e-3);
    metric("child_spawn_goal_cpu_largest_heap_over_smallest", ratio, "x");
    std::printf("goal child_spawn_cpu_largest_heap_over_smallest %s (a child's start costs the "
                "starter within 2x at %zu MiB of heap of at %zu MiB)\n",
                ratio <= 2.0 ? "met" : "MISSED", heaps[largest], heaps[smallest]);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "bench_child_spawn: %s\n", e.what());
    return 1;
}
