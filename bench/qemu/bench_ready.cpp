// start() and start-to-ready through localvm against the same QEMU command
// line driven by hand, on the tiny guest, boots interleaved (library, hand,
// library, ...). The hand side is what a careful script would do:
//   start:  spawn QEMU, connect QMP (retrying every 1 ms until the socket
//           exists), greeting, qmp_capabilities, cont answered;
//   ready:  the forward's port from `info usernet`, then a tight banner loop
//           (each connection gets at most 500 ms, a refused one is retried
//           after 10 ms), then one `ssh true` (retried while it fails).
// The command line is the one localvm spawned (read from /proc once); the
// hand side gets its own copy of the seed ISO. The library runs twice per
// round: as is (overlapping banner attempts), and with the probe held to one
// connection at a time for `attempt_timeout` (the probe before overlapping
// attempts: `ssh::wait_for_banner` with attempt_interval = attempt_timeout,
// then `wait_ready`, whose banner is then immediate), as the baseline.
// The guest's own "ssh ready" console line (printed once dropbear listens)
// is timestamped from outside by a thread tailing console.log every 2 ms, so
// each boot also yields the probe's lag behind the guest (banner - "ssh
// ready"): that figure does not depend on how fast the boot was, which on a
// loaded machine varies by seconds from boot to boot.
// A second mode (issue #20, point 3) shows what TCG contention costs on this
// machine: K tiny guests started at once from one io_context (start() then
// wait_ready() each), for each K given; the time until all are ready, the
// first and the median, one round per K, stopped and removed between.
// Issue #20's goals end the first mode's output as `goal NAME met|MISSED`
// lines: start() within 1.1x of by hand, ready within 1.05x.
// A third mode (issue #20, point 2 with the real QEMU): K start() at once
// against the same K command lines by hand at once (see start_many); it
// ends with that point's start goal as `goal` lines.
// usage: bench_ready [RUNS]                (the guest: test/guests/build tiny)
//        bench_ready --concurrent K...     (e.g. --concurrent 1 4 8)
//        bench_ready --start-many K [ROUNDS]  (e.g. --start-many 16 5)
#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/ssh/probe.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../../test/common/proc_util.hpp"
#include "../../test/e2e/qemu/guest.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../common/args.hpp"
#include "../common/stats.hpp"

extern char** environ;

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

double ms_since(clk::time_point t0, clk::time_point t1) {
    return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

[[noreturn]] void die(const std::string& what) {
    throw std::runtime_error(what + (errno ? std::string(": ") + std::strerror(errno) : ""));
}

std::vector<std::string> read_cmdline(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::string> argv;
    std::size_t at = 0;
    while (at < all.size()) {
        auto end = all.find('\0', at);
        argv.push_back(all.substr(at, end - at));
        at = end + 1;
    }
    return argv;
}

// The value of option `opt`'s `key=` in QEMU's argv (e.g. -qmp unix:PATH,...).
std::string qmp_socket_path(const std::vector<std::string>& argv) {
    for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
        const std::string& v = argv[i + 1];
        if (argv[i] == "-qmp" && v.starts_with("unix:"))
            return v.substr(5, v.find(',') - 5);
        if (argv[i] == "-chardev" && v.find("id=qmp") != std::string::npos) {
            auto p = v.find("path=");
            return v.substr(p + 5, v.find(',', p) - p - 5);
        }
    }
    throw std::runtime_error("no QMP socket in QEMU's command line");
}

// A minimal blocking QMP client: one line per message.
struct blocking_qmp {
    int fd = -1;
    std::string buf;

    explicit blocking_qmp(const std::string& path) {
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        for (;;) {
            fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0)
                break;
            ::close(fd);
            if (errno != ENOENT && errno != ECONNREFUSED)
                die("connect " + path);
            std::this_thread::sleep_for(1ms); // the hand loop's retry
        }
        line(); // greeting
        command(R"({"execute":"qmp_capabilities"})");
    }
    ~blocking_qmp() { ::close(fd); }
    std::string line() {
        for (;;) {
            auto nl = buf.find('\n');
            if (nl != std::string::npos) {
                auto l = buf.substr(0, nl);
                buf.erase(0, nl + 1);
                return l;
            }
            char tmp[4096];
            auto n = ::read(fd, tmp, sizeof tmp);
            if (n <= 0)
                die("QMP read");
            buf.append(tmp, n);
        }
    }
    // Sends a command, returns its reply line (events are skipped).
    std::string command(const std::string& json) {
        std::string out = json + "\n";
        if (::write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size()))
            die("QMP write");
        for (;;) {
            auto l = line();
            if (l.find("\"return\"") != std::string::npos ||
                l.find("\"error\"") != std::string::npos)
                return l;
        }
    }
};

std::uint16_t forwarded_port(blocking_qmp& q) {
    auto r = q.command(
        R"({"execute":"human-monitor-command","arguments":{"command-line":"info usernet"}})");
    // "TCP[HOST_FORWARD]  12  127.0.0.1 40123  10.0.2.15 22 ..."
    auto at = r.find("HOST_FORWARD");
    if (at == std::string::npos)
        throw std::runtime_error("no HOST_FORWARD in: " + r);
    auto ip = r.find("127.0.0.1", at);
    return static_cast<std::uint16_t>(std::stoi(r.substr(ip + 9)));
}

// One connection: true when an "SSH-" line arrives within `limit`.
bool banner_once(std::uint16_t port, std::chrono::milliseconds limit) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        std::this_thread::sleep_for(10ms);
        return false;
    }
    auto until = clk::now() + limit;
    std::string got;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clk::now());
        if (left.count() <= 0)
            break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
            break;
        char tmp[512];
        auto n = ::read(fd, tmp, sizeof tmp);
        if (n <= 0) { // closed by the guest (reset): retry shortly
            ::close(fd);
            std::this_thread::sleep_for(10ms);
            return false;
        }
        got.append(tmp, n);
        if (got.find("SSH-") != std::string::npos && got.find('\n') != std::string::npos) {
            ::close(fd);
            return true;
        }
    }
    ::close(fd);
    return false;
}

int run_wait(const std::vector<std::string>& argv) {
    std::vector<char*> cargv;
    for (auto& s : argv)
        cargv.push_back(const_cast<char*>(s.c_str()));
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    if (posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ) != 0)
        die("spawn " + argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

// Timestamps the next "ssh ready" line appended to `log` (a count above the
// one at construction) by polling it from a thread.
class ready_line_watch {
public:
    explicit ready_line_watch(fs::path log)
        : log_(std::move(log))
        , base_(count()) {
        thread_ = std::thread([this] {
            while (!stop_) {
                if (count() > base_) {
                    at_ = clk::now();
                    return;
                }
                std::this_thread::sleep_for(2ms);
            }
        });
    }
    ~ready_line_watch() { finish(); }
    // Stops polling; the time of the line, or nullopt.
    std::optional<clk::time_point> finish() {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
        return at_;
    }

private:
    int count() const {
        std::ifstream f(log_);
        std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        int n = 0;
        for (auto at = all.find("ssh ready"); at != std::string::npos;
             at = all.find("ssh ready", at + 1))
            ++n;
        return n;
    }
    fs::path log_;
    int base_;
    std::atomic<bool> stop_{false};
    std::optional<clk::time_point> at_;
    std::thread thread_;
};

struct hand_result {
    double start_ms, banner_ms, ready_ms, ssh_ready_ms;
};

// QEMU spawned by hand from `argv`: stdin and stdout on /dev/null.
pid_t spawn_qemu(const std::vector<std::string>& argv) {
    std::vector<char*> cargv;
    for (auto& s : argv)
        cargv.push_back(const_cast<char*>(s.c_str()));
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    if (posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ) != 0)
        die("spawn QEMU");
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

// The command line localvm gave the QEMU of `pid`, with its seed ISO
// replaced by a copy at `seed_copy` (start rewrites the VM's own).
std::vector<std::string> hand_command_line(pid_t pid, const fs::path& seed_copy) {
    auto argv = read_cmdline(pid);
    for (auto& a : argv) {
        auto p = a.find("seed");
        if (p == std::string::npos || a.find(".iso") == std::string::npos)
            continue;
        auto f0 = a.find("file=");
        auto f1 = a.find(',', f0);
        fs::path seed = a.substr(f0 + 5, f1 - f0 - 5);
        fs::copy_file(seed, seed_copy, fs::copy_options::overwrite_existing);
        a.replace(f0 + 5, f1 - f0 - 5, seed_copy.string());
    }
    return argv;
}

hand_result hand_boot(const std::vector<std::string>& argv, const fs::path& key,
                      const fs::path& console_log) {
    auto t0 = clk::now();
    ready_line_watch watch(console_log);
    const pid_t pid = spawn_qemu(argv);
    hand_result r{};
    {
        blocking_qmp q(qmp_socket_path(argv));
        q.command(R"({"execute":"cont"})");
        r.start_ms = ms_since(t0, clk::now());
        auto port = forwarded_port(q);
        while (!banner_once(port, 500ms)) {
        }
        r.banner_ms = ms_since(t0, clk::now());
        auto seen = watch.finish();
        r.ssh_ready_ms = seen ? ms_since(t0, *seen) : -1;
        std::vector<std::string> ssh = {"ssh",
                                        "-q",
                                        "-i",
                                        key.string(),
                                        "-p",
                                        std::to_string(port),
                                        "-o",
                                        "BatchMode=yes",
                                        "-o",
                                        "StrictHostKeyChecking=no",
                                        "-o",
                                        "UserKnownHostsFile=/dev/null",
                                        "-o",
                                        "ConnectTimeout=10",
                                        "debian@127.0.0.1",
                                        "true"};
        while (run_wait(ssh) != 0) {
        }
        r.ready_ms = ms_since(t0, clk::now());
        q.command(R"({"execute":"quit"})");
    }
    int st;
    ::waitpid(pid, &st, 0);
    return r;
}

using bench_stats::median;

// A goal line of issue #20: `ratio` (localvm over by hand, the median of
// the per-round ratios) within `limit`.
void ratio_goal(const std::string& name, double ratio, double limit) {
    std::printf("goal %s %s (%.3fx of by hand, per-round median; goal: within %.2fx)\n",
                name.c_str(), ratio <= limit ? "met" : "MISSED", ratio, limit);
}

// The empty base image every VM of a run is an overlay of.
asio::awaitable<void> make_base(const lve2e::home& h) {
    localvm::process::options base;
    base.argv = {"qemu-img", "create", "-q", "-f", "qcow2", (h.root / "base.qcow2").string(), "64M"};
    co_await localvm::process::run_checked(base);
}

// `op(0)` .. `op(k - 1)` at once on `ctx`, run to their end; the first
// failure is rethrown once all have ended.
void all_at_once(asio::io_context& ctx, int k, const std::function<asio::awaitable<void>(int)>& op) {
    std::exception_ptr failure;
    for (int i = 0; i < k; ++i)
        asio::co_spawn(ctx, op(i), [&](std::exception_ptr e) {
            if (e && !failure)
                failure = e;
        });
    ctx.restart();
    ctx.run();
    if (failure)
        std::rethrow_exception(failure);
}

} // namespace

// K guests booted at once, for each K of `counts`: `metric` lines.
int concurrent(const std::vector<int>& counts) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    asio::io_context ctx;
    try {
        all_at_once(ctx, 1, [&](int) { return make_base(h); });
        for (int k : counts) {
            std::vector<std::unique_ptr<localvm::qemu::manager>> vms;
            for (int i = 0; i < k; ++i)
                vms.push_back(std::make_unique<localvm::qemu::manager>(
                    ctx.get_executor(),
                    h.options("c" + std::to_string(k) + "-" + std::to_string(i))));
            std::vector<double> started(static_cast<std::size_t>(k)), ready(started);
            // Each phase for all K at once; the first failure ends the mode.
            auto all = [&](std::function<asio::awaitable<void>(int)> op) { all_at_once(ctx, k, op); };
            all([&](int i) -> asio::awaitable<void> {
                co_await vms[static_cast<std::size_t>(i)]->create(h.root / "base.qcow2");
            });
            const auto t0 = clk::now();
            all([&](int i) -> asio::awaitable<void> {
                auto& vm = *vms[static_cast<std::size_t>(i)];
                co_await vm.start(lve2e::tiny_start(g, h));
                started[static_cast<std::size_t>(i)] = ms_since(t0, clk::now());
                co_await vm.wait_ready(600s);
                ready[static_cast<std::size_t>(i)] = ms_since(t0, clk::now());
            });
            auto pr = [k](const char* name, double v) {
                std::printf("metric tiny_concurrent_k%d_%s %.1f ms\n", k, name, v);
                std::fflush(stdout);
            };
            pr("all_started_ms", *std::max_element(started.begin(), started.end()));
            pr("first_ready_ms", *std::min_element(ready.begin(), ready.end()));
            pr("ready_p50_ms", median(ready));
            pr("all_ready_ms", *std::max_element(ready.begin(), ready.end()));
            all([&](int i) -> asio::awaitable<void> {
                co_await vms[static_cast<std::size_t>(i)]->stop();
                co_await vms[static_cast<std::size_t>(i)]->remove();
            });
        }
        std::printf("metric tiny_concurrent_host_cpus %ld cpus\n", ::sysconf(_SC_NPROCESSORS_ONLN));
    } catch (const std::exception& e) {
        std::cerr << "bench_ready --concurrent: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

// What one side of a start_many round cost: the managing thread's CPU
// time and its time waiting for a CPU (/proc/thread-self/schedstat, ns),
// and the whole machine's busy time (proc_util::machine_busy_ms).
struct side_cost {
    double thread_cpu_ms = 0, thread_wait_ms = 0, machine_ms = 0;

    static side_cost now() {
        side_cost c;
        std::ifstream t("/proc/thread-self/schedstat");
        t >> c.thread_cpu_ms >> c.thread_wait_ms;
        c.thread_cpu_ms /= 1e6;
        c.thread_wait_ms /= 1e6;
        c.machine_ms = proc_util::machine_busy_ms();
        return c;
    }
    side_cost operator-(const side_cost& o) const {
        return {thread_cpu_ms - o.thread_cpu_ms, thread_wait_ms - o.thread_wait_ms,
                machine_ms - o.machine_ms};
    }
};

// Issue #20, point 2 with the real QEMU in place of the stand-in: K tiny
// guests' start() at once through localvm against the same K command lines
// by hand at once (all spawned, then each connected, greeted and sent
// `cont` in turn by a blocking client, as bench_scale's bare stand-ins), in
// `rounds` rounds that alternate which side goes first, after one untimed
// round of both. Each side's figure
// is the time until every `cont` is answered, with what it cost (side_cost);
// the guests are then ended (`quit`) before the other side runs.
// BENCH_VERBOSE=1: each round's per-VM times on stderr.
int start_many(int k, int rounds) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    asio::io_context ctx;
    std::vector<std::unique_ptr<localvm::qemu::manager>> vms;
    const bool verbose = std::getenv("BENCH_VERBOSE") != nullptr;
    auto dump = [](const char* what, std::vector<double> v) {
        std::sort(v.begin(), v.end());
        std::fprintf(stderr, "  %s:", what);
        for (double x : v)
            std::fprintf(stderr, " %.0f", x);
        std::fprintf(stderr, "\n");
    };
    try {
        auto all = [&](std::function<asio::awaitable<void>(int)> op) { all_at_once(ctx, k, op); };
        for (int i = 0; i < k; ++i) {
            auto o = h.options("many-" + std::to_string(i));
            o.stop.powerdown_timeout = 0ms; // straight to quit: the guests are still booting
            vms.push_back(std::make_unique<localvm::qemu::manager>(ctx.get_executor(), o));
        }
        auto vm = [&](int i) -> localvm::qemu::manager& { return *vms[static_cast<std::size_t>(i)]; };
        all_at_once(ctx, 1, [&](int) { return make_base(h); });
        // The hand side's command lines: each VM's, as localvm spawned it.
        std::vector<std::vector<std::string>> argvs(static_cast<std::size_t>(k));
        all([&](int i) -> asio::awaitable<void> {
            co_await vm(i).create(h.root / "base.qcow2");
            co_await vm(i).start(lve2e::tiny_start(g, h));
            auto pid = co_await vm(i).pid();
            argvs[static_cast<std::size_t>(i)] =
                hand_command_line(*pid, h.root / ("hand-seed-" + std::to_string(i) + ".iso"));
            co_await vm(i).stop();
        });
        // What the rounds measured; the warm-up's is dropped.
        struct {
            std::vector<double> lib_ms, hand_ms;
            std::vector<side_cost> lib_cost, hand_cost;
            std::vector<double> hand_greeted, hand_running; // per VM, every round
            // Each stage of each library start, in ms since its round began.
            std::map<std::string, std::vector<double>> stages;
        } m;
        clk::time_point t0;
        for (int i = 0; i < k; ++i)
            vm(i).set_stage_sink([&](localvm::qemu::boot_stage st, std::string_view) {
                m.stages[std::string(localvm::qemu::to_string(st))].push_back(
                    ms_since(t0, clk::now()));
            });
        auto lib = [&] {
            const auto c0 = side_cost::now();
            t0 = clk::now();
            all([&](int i) -> asio::awaitable<void> {
                co_await vm(i).start(lve2e::tiny_start(g, h));
            });
            m.lib_ms.push_back(ms_since(t0, clk::now()));
            m.lib_cost.push_back(side_cost::now() - c0);
            if (verbose)
                for (auto& [name, v] : m.stages)
                    dump(("localvm " + name).c_str(), {v.end() - k, v.end()});
            all([&](int i) -> asio::awaitable<void> { co_await vm(i).stop(); });
        };
        auto hand = [&] {
            const auto c0 = side_cost::now();
            const auto t0 = clk::now();
            std::vector<pid_t> pids;
            for (const auto& argv : argvs)
                pids.push_back(spawn_qemu(argv));
            std::vector<std::unique_ptr<blocking_qmp>> monitors;
            std::vector<double> greeted, running;
            for (const auto& argv : argvs) {
                monitors.push_back(std::make_unique<blocking_qmp>(qmp_socket_path(argv)));
                greeted.push_back(ms_since(t0, clk::now()));
                monitors.back()->command(R"({"execute":"cont"})");
                running.push_back(ms_since(t0, clk::now()));
            }
            m.hand_ms.push_back(ms_since(t0, clk::now()));
            m.hand_cost.push_back(side_cost::now() - c0);
            m.hand_greeted.insert(m.hand_greeted.end(), greeted.begin(), greeted.end());
            m.hand_running.insert(m.hand_running.end(), running.begin(), running.end());
            if (verbose) {
                dump("by hand qmp-ready", greeted);
                dump("by hand guest-running", running);
            }
            for (auto& q : monitors)
                q->command(R"({"execute":"quit"})");
            monitors.clear();
            for (pid_t p : pids)
                ::waitpid(p, nullptr, 0);
        };
        // Round -1 warms up, untimed. This machine may be a VM that gives
        // its free memory back to its host (virtio-balloon free page
        // reporting): the first burst of QEMUs after the setup, or after a
        // quiet spell, is slow whichever side it is, and round 0's first
        // side paid it nearly every time (localvm in round 0: 1.4-2.4 s in
        // all but one of about 20 runs, by hand after it 0.8-1.2 s; with a
        // 5 s pause before every side, 3 of 4 rounds of localvm and 2 of 4
        // by hand took 1.7-1.9 s instead of 1.0-1.3 s).
        for (int r = -1; r < rounds; ++r) {
            if (r % 2 == 0) {
                lib();
                hand();
            } else {
                hand();
                lib();
            }
            std::fprintf(stderr,
                         "round %d%s: %d starts at once: localvm %.1f ms (its thread ran %.1f ms,"
                         " waited for a CPU %.1f ms), by hand %.1f ms (%.1f, %.1f)\n",
                         r, r < 0 ? " (warm-up, not counted)" : "", k, m.lib_ms.back(),
                         m.lib_cost.back().thread_cpu_ms, m.lib_cost.back().thread_wait_ms,
                         m.hand_ms.back(), m.hand_cost.back().thread_cpu_ms,
                         m.hand_cost.back().thread_wait_ms);
            if (r < 0)
                m = {};
        }
        std::vector<double> ratio;
        for (std::size_t i = 0; i < m.lib_ms.size(); ++i)
            ratio.push_back(m.lib_ms[i] / m.hand_ms[i]);
        auto pr = [k](const std::string& name, double v, const char* unit) {
            std::printf("metric tiny_start_many_k%d_%s %.3f %s\n", k, name.c_str(), v, unit);
        };
        pr("lib_p50_ms", median(m.lib_ms), "ms");
        pr("hand_p50_ms", median(m.hand_ms), "ms");
        pr("lib_over_hand_per_round_p50", median(ratio), "ratio");
        // The worst round, beside the median the goal is judged on: with
        // K QEMUs setting up at once on a small machine, a round's last VM
        // waits on the scheduler, on either side.
        pr("lib_over_hand_per_round_max", *std::max_element(ratio.begin(), ratio.end()), "ratio");
        // When the median VM got there, on each side.
        for (auto& [name, v] : m.stages)
            pr("lib_stage_" + name + "_p50_ms", median(v), "ms");
        pr("hand_stage_qmp-ready_p50_ms", median(m.hand_greeted), "ms");
        pr("hand_stage_guest-running_p50_ms", median(m.hand_running), "ms");
        for (auto [side, costs] :
             {std::pair{"lib", &m.lib_cost}, std::pair{"hand", &m.hand_cost}}) {
            std::vector<double> cpu, wait, machine;
            for (const auto& c : *costs) {
                cpu.push_back(c.thread_cpu_ms);
                wait.push_back(c.thread_wait_ms);
                machine.push_back(c.machine_ms);
            }
            pr(std::string(side) + "_thread_cpu_p50_ms", median(cpu), "ms");
            pr(std::string(side) + "_thread_waiting_for_cpu_p50_ms", median(wait), "ms");
            pr(std::string(side) + "_machine_cpu_p50_ms", median(machine), "ms");
        }
        std::printf("metric tiny_start_many_rounds %d count\n", rounds);
        // Issue #20, point 2's start goal, judged on the real QEMU: starting
        // many at once is limited by QEMU's own start, not by localvm. All K
        // running within 1.5x of by hand (per-round median, robust against
        // load that changes between rounds), and localvm's thread a small
        // share of the machine's CPU in its rounds: under 10% (it is the
        // QEMUs' own setup that fills the machine).
        std::vector<double> share;
        for (const auto& c : m.lib_cost)
            if (c.machine_ms > 0)
                share.push_back(100 * c.thread_cpu_ms / c.machine_ms);
        const double r = median(ratio), s = share.empty() ? 100 : median(share);
        pr("lib_thread_share_of_machine_cpu_p50", s, "%");
        ratio_goal("tiny_start_many_k" + std::to_string(k) + "_vs_hand", r, 1.50);
        std::printf("goal tiny_start_many_k%d_thread_share %s (localvm's thread ran %.1f%% of"
                    " the machine's CPU time, per-round median; goal: under 10%%)\n",
                    k, s < 10 ? "met" : "MISSED", s);
        all([&](int i) -> asio::awaitable<void> { co_await vm(i).remove(); });
    } catch (const std::exception& e) {
        std::cerr << "bench_ready --start-many: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "--start-many") {
        const int k = argc > 2 ? bench_args::number(argv[0], argv[2], "K", 1) : 16;
        const int rounds = argc > 3 ? bench_args::number(argv[0], argv[3], "ROUNDS", 1) : 5;
        return start_many(k, rounds);
    }
    if (argc > 1 && std::string(argv[1]) == "--concurrent") {
        std::vector<int> counts;
        for (int i = 2; i < argc; ++i)
            counts.push_back(bench_args::number(argv[0], argv[i], "a count of guests", 1));
        if (counts.empty())
            counts = {1, 4, 8};
        return concurrent(counts);
    }
    const int runs = argc > 1 ? bench_args::number(argv[0], argv[1], "RUNS", 1) : 5;
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    asio::io_context ctx;
    auto run = [&](auto body) { all_at_once(ctx, 1, [&](int) { return body(); }); };
    try {
        localvm::qemu::manager m(ctx.get_executor(), h.options("bench"));
        std::map<std::string, std::vector<double>> lib_stage; // stage -> ms since start()
        clk::time_point t0;
        m.set_stage_sink([&](localvm::qemu::boot_stage s, std::string_view) {
            lib_stage[std::string(localvm::qemu::to_string(s))].push_back(ms_since(t0, clk::now()));
        });
        std::vector<std::string> qemu_argv;
        run([&]() -> asio::awaitable<void> {
            co_await make_base(h);
            co_await m.create(h.root / "base.qcow2");
            co_await m.start(lve2e::tiny_start(g, h));
            auto pid = co_await m.pid();
            qemu_argv = hand_command_line(*pid, h.root / "hand-seed.iso");
            co_await m.stop();
        });
        lib_stage.clear();

        if (std::getenv("BENCH_VERBOSE"))
            for (auto& a : qemu_argv)
                std::fprintf(stderr, "argv: %s\n", a.c_str());
        std::vector<double> lib_start, lib_ready, hand_start, hand_banner, hand_ready;
        std::vector<double> old_start, old_banner, old_ready;
        std::vector<double> lib_lag, old_lag, hand_lag; // banner - the guest's "ssh ready"
        std::vector<double> lib_banner;
        // The three ways of booting, in an order that rotates from round to
        // round (load on this machine drifts; no way gets a fixed place).
        auto lib_boot = [&] {
            run([&]() -> asio::awaitable<void> {
                t0 = clk::now();
                co_await m.start(lve2e::tiny_start(g, h));
                lib_start.push_back(ms_since(t0, clk::now()));
                ready_line_watch watch(m.files().console_log);
                co_await m.wait_ready(300s);
                auto seen = watch.finish();
                lib_banner.push_back(lib_stage["ssh-banner"].back());
                lib_lag.push_back(lib_banner.back() - (seen ? ms_since(t0, *seen) : 0));
                lib_ready.push_back(ms_since(t0, clk::now()));
                co_await m.stop();
            });
        };
        auto old_boot = [&] {
            auto stages = lib_stage; // its wait_ready's stages are not the library's figures
            run([&]() -> asio::awaitable<void> {
                t0 = clk::now();
                co_await m.start(lve2e::tiny_start(g, h));
                old_start.push_back(ms_since(t0, clk::now()));
                ready_line_watch watch(m.files().console_log);
                auto ports = co_await m.ports();
                localvm::ssh::probe_options one;
                one.attempt_interval = one.attempt_timeout;
                co_await localvm::ssh::wait_for_banner("127.0.0.1", ports.at(0).host_port, one);
                old_banner.push_back(ms_since(t0, clk::now()));
                auto seen = watch.finish();
                old_lag.push_back(old_banner.back() - (seen ? ms_since(t0, *seen) : 0));
                co_await m.wait_ready(300s);
                old_ready.push_back(ms_since(t0, clk::now()));
                co_await m.stop();
            });
            lib_stage = stages;
        };
        auto hand = [&] {
            // Without a drainer QEMU appends the console to the FIFO's path.
            auto log = m.files().console_log;
            log += ".fifo";
            auto r = hand_boot(qemu_argv, h.key, log);
            hand_start.push_back(r.start_ms);
            hand_banner.push_back(r.banner_ms);
            hand_ready.push_back(r.ready_ms);
            hand_lag.push_back(r.ssh_ready_ms < 0 ? -1 : r.banner_ms - r.ssh_ready_ms);
        };
        for (int i = 0; i < runs; ++i) {
            for (int k = 0; k < 3; ++k)
                switch ((i + k) % 3) {
                case 0:
                    lib_boot();
                    break;
                case 1:
                    old_boot();
                    break;
                default:
                    hand();
                    break;
                }
            std::fprintf(stderr,
                         "run %d: lib start %.1f banner %.1f (lag %.1f) ready %.1f | one-at-a-time"
                         " banner %.1f (lag %.1f) ready %.1f | hand start %.1f banner %.1f (lag"
                         " %.1f) ready %.1f\n",
                         i, lib_start.back(), lib_banner.back(), lib_lag.back(), lib_ready.back(),
                         old_banner.back(), old_lag.back(), old_ready.back(), hand_start.back(),
                         hand_banner.back(), hand_lag.back(), hand_ready.back());
        }
        run([&]() -> asio::awaitable<void> { co_await m.remove(); });

        auto pr = [](const char* name, double v) {
            std::printf("metric %s %.1f ms\n", name, v);
        };
        pr("tiny_start_lib_p50_ms", median(lib_start));
        pr("tiny_start_hand_p50_ms", median(hand_start));
        std::printf("metric tiny_start_lib_over_hand %.3f ratio\n",
                    median(lib_start) / median(hand_start));
        for (auto& [stage, v] : lib_stage)
            std::printf("metric tiny_lib_stage_%s_p50_ms %.1f ms\n", stage.c_str(), median(v));
        pr("tiny_banner_hand_p50_ms", median(hand_banner));
        pr("tiny_banner_lag_after_guest_ssh_ready_lib_p50_ms", median(lib_lag));
        pr("tiny_banner_lag_after_guest_ssh_ready_lib_one_at_a_time_p50_ms", median(old_lag));
        pr("tiny_banner_lag_after_guest_ssh_ready_hand_p50_ms", median(hand_lag));
        auto max = [](const std::vector<double>& v) {
            return *std::max_element(v.begin(), v.end());
        };
        pr("tiny_banner_lag_after_guest_ssh_ready_lib_max_ms", max(lib_lag));
        pr("tiny_banner_lag_after_guest_ssh_ready_lib_one_at_a_time_max_ms", max(old_lag));
        pr("tiny_banner_lag_after_guest_ssh_ready_hand_max_ms", max(hand_lag));
        pr("tiny_banner_lib_one_at_a_time_p50_ms", median(old_banner));
        pr("tiny_ready_lib_one_at_a_time_p50_ms", median(old_ready));
        std::printf("metric tiny_ready_lib_one_at_a_time_over_hand %.3f ratio\n",
                    median(old_ready) / median(hand_ready));
        pr("tiny_ready_lib_p50_ms", median(lib_ready));
        pr("tiny_ready_hand_p50_ms", median(hand_ready));
        std::printf("metric tiny_ready_lib_over_hand %.3f ratio\n",
                    median(lib_ready) / median(hand_ready));
        // Per round (the three boots of a round ran back to back), robust
        // against load that changes between rounds.
        std::vector<double> r_new, r_old, r_start;
        for (std::size_t i = 0; i < lib_ready.size(); ++i) {
            r_new.push_back(lib_ready[i] / hand_ready[i]);
            r_old.push_back(old_ready[i] / hand_ready[i]);
            r_start.push_back(lib_start[i] / hand_start[i]);
        }
        std::printf("metric tiny_start_lib_over_hand_per_round_p50 %.3f ratio\n", median(r_start));
        std::printf("metric tiny_ready_lib_over_hand_per_round_p50 %.3f ratio\n", median(r_new));
        std::printf("metric tiny_ready_lib_one_at_a_time_over_hand_per_round_p50 %.3f ratio\n",
                    median(r_old));
        std::printf("metric tiny_ready_runs %d count\n", runs);
        // Issue #20's goals, judged per round (robust against load that
        // changes between rounds).
        ratio_goal("tiny_start_vs_hand", median(r_start), 1.10);
        ratio_goal("tiny_ready_vs_hand", median(r_new), 1.05);
    } catch (const std::exception& e) {
        std::cerr << "bench_ready: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
