// QMP round trips against one real, paused QEMU (TCG) with 4 QMP monitors:
// the client serially, a minimal blocking raw-socket loop (the limit QEMU
// itself sets), the client with 16 coroutines at once (with `oob`, over 4
// lanes and over one connection; without `oob`), raw pipelined loops for the
// same, latency percentiles, and the heap an idle connection holds. Prints
// `metric NAME VALUE UNIT`.
//
// Usage: bench_qmp [ROUND_TRIPS]   (default 2000 per measurement, 5 rounds)
#include <localvm/qmp/client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <vector>

#include "qemu_process.hpp"
#include <malloc.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "../common/args.hpp"

// Live heap bytes, counted by replacing the global allocation functions.
static std::atomic<long long> live_bytes{0};

void* operator new(std::size_t n) {
    void* p = std::malloc(n ? n : 1);
    if (!p)
        throw std::bad_alloc();
    live_bytes += static_cast<long long>(malloc_usable_size(p));
    return p;
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept {
    if (p)
        live_bytes -= static_cast<long long>(malloc_usable_size(p));
    std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }

namespace asio = boost::asio;
namespace qmp = localvm::qmp;
using clock_type = std::chrono::steady_clock;

namespace {

void metric(const char* name, double value, const char* unit) {
    std::printf("metric %s %.6g %s\n", name, value, unit);
    std::fflush(stdout);
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<std::size_t>(p * v.size()))];
}

// The minimal blocking client: write a command, read lines until its reply.
struct raw_client {
    int fd = -1;
    std::string buf;
    explicit raw_client(const std::string& path, bool oob = false) {
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
            throw std::runtime_error("raw connect failed");
        line(); // greeting
        roundtrip(oob ? "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\r\n"
                      : "{\"execute\":\"qmp_capabilities\"}\r\n");
    }
    ~raw_client() { ::close(fd); }
    // One blocking read into `buf`.
    void read_more() {
        char tmp[4096];
        auto n = ::read(fd, tmp, sizeof tmp);
        if (n <= 0)
            throw std::runtime_error("raw read failed");
        buf.append(tmp, static_cast<std::size_t>(n));
    }
    std::optional<std::string> take_line() {
        auto nl = buf.find('\n');
        if (nl == std::string::npos)
            return std::nullopt;
        auto l = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        return l;
    }
    static bool is_reply(const std::string& l) { return l.starts_with("{\"return\""); }
    std::string line() {
        for (;;) {
            if (auto l = take_line())
                return *l;
            read_more();
        }
    }
    void send(const std::string& cmd) {
        if (::write(fd, cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size()))
            throw std::runtime_error("raw write failed");
    }
    void await_reply() {
        while (!is_reply(line())) {
        }
    }
    // Reads (once the socket is readable) until at least one reply is in,
    // and counts the replies taken.
    int read_replies() {
        int count = 0;
        while (count == 0) {
            read_more();
            while (auto l = take_line())
                count += is_reply(*l);
        }
        return count;
    }
    void roundtrip(const std::string& cmd) {
        send(cmd);
        await_reply();
    }
};

struct result {
    double per_s = 0;
    std::vector<double> latencies_us;
};

result raw_serial(const std::string& path, int n) {
    raw_client r(path);
    result out;
    auto start = clock_type::now();
    for (int i = 0; i < n; ++i) {
        auto t0 = clock_type::now();
        r.roundtrip("{\"execute\":\"query-status\",\"id\":" + std::to_string(i) + "}\r\n");
        out.latencies_us.push_back(
            std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    }
    out.per_s = n / std::chrono::duration<double>(clock_type::now() - start).count();
    return out;
}

// The same, keeping `depth` commands in flight (what QEMU allows at best).
double raw_pipelined(const std::string& path, int n, int depth, bool oob) {
    raw_client r(path, oob);
    auto start = clock_type::now();
    int sent = 0;
    for (; sent < depth; ++sent)
        r.send("{\"execute\":\"query-status\",\"id\":" + std::to_string(sent) + "}\r\n");
    for (int done = 0; done < n; ++done) {
        r.await_reply();
        if (sent < n)
            r.send("{\"execute\":\"query-status\",\"id\":" + std::to_string(sent++) + "}\r\n");
    }
    return n / std::chrono::duration<double>(clock_type::now() - start).count();
}

// The same over several monitors of one QEMU, `depth` in flight on each,
// from one thread (poll): the limit for a client with lanes.
double raw_pipelined_lanes(const std::vector<std::string>& paths, int n, int depth, bool oob) {
    std::vector<std::unique_ptr<raw_client>> rs;
    for (auto& p : paths)
        rs.push_back(std::make_unique<raw_client>(p, oob));
    std::vector<pollfd> fds;
    for (auto& r : rs)
        fds.push_back(pollfd{r->fd, POLLIN, 0});
    auto start = clock_type::now();
    int sent = 0, done = 0;
    auto command = [&] {
        return "{\"execute\":\"query-status\",\"id\":" + std::to_string(sent++) + "}\r\n";
    };
    for (auto& r : rs)
        for (int d = 0; d < depth; ++d)
            r->send(command());
    while (done < n) {
        if (::poll(fds.data(), fds.size(), -1) < 0)
            throw std::runtime_error("poll failed");
        for (std::size_t i = 0; i < rs.size(); ++i) {
            if (!fds[i].revents)
                continue;
            int replies = rs[i]->read_replies();
            done += replies;
            std::string out;
            for (int k = 0; k < replies && sent < n; ++k)
                out += command();
            if (!out.empty())
                rs[i]->send(out);
        }
    }
    return n / std::chrono::duration<double>(clock_type::now() - start).count();
}

template <class T> T run(std::function<asio::awaitable<T>()> f) {
    asio::io_context ctx;
    std::optional<T> value;
    std::exception_ptr failure;
    asio::co_spawn(ctx, std::move(f), [&](std::exception_ptr e, T v) {
        failure = e;
        if (!e)
            value = std::move(v);
    });
    ctx.run();
    if (failure)
        std::rethrow_exception(failure);
    return std::move(*value);
}

result client_serial(const std::string& path, int n) {
    return run<result>([&]() -> asio::awaitable<result> {
        auto c = co_await qmp::client::connect(path);
        result out;
        auto start = clock_type::now();
        for (int i = 0; i < n; ++i) {
            auto t0 = clock_type::now();
            co_await c.query_status();
            out.latencies_us.push_back(
                std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
        }
        out.per_s = n / std::chrono::duration<double>(clock_type::now() - start).count();
        co_return out;
    });
}

result client_concurrent(const std::vector<std::string>& paths, int n, int workers, bool oob) {
    return run<result>([&]() -> asio::awaitable<result> {
        auto ex = co_await asio::this_coro::executor;
        auto c = co_await qmp::client::connect_lanes(paths, {.enable_oob = oob});
        if (c.oob_enabled() != oob)
            throw std::runtime_error("oob negotiation differs");
        result out;
        int running = workers;
        asio::steady_timer done(ex, clock_type::time_point::max());
        std::exception_ptr failure;
        auto start = clock_type::now();
        for (int w = 0; w < workers; ++w)
            asio::co_spawn(
                ex,
                [&]() -> asio::awaitable<void> {
                    for (int i = 0; i < n / workers; ++i) {
                        auto t0 = clock_type::now();
                        co_await c.query_status();
                        out.latencies_us.push_back(
                            std::chrono::duration<double, std::micro>(clock_type::now() - t0)
                                .count());
                    }
                },
                [&](std::exception_ptr e) {
                    if (e)
                        failure = e;
                    if (--running == 0)
                        done.cancel();
                });
        boost::system::error_code ec;
        co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (failure)
            std::rethrow_exception(failure);
        out.per_s = (n / workers) * workers /
                    std::chrono::duration<double>(clock_type::now() - start).count();
        co_return out;
    });
}

long long idle_connection_bytes(const std::string& path) {
    return run<long long>([&]() -> asio::awaitable<long long> {
        auto before = live_bytes.load();
        auto c = co_await qmp::client::connect(path);
        co_await c.query_status(); // settled: a round trip done, nothing in flight
        auto after = live_bytes.load();
        co_return after - before;
    });
}

} // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? bench_args::number(argv[0], argv[1], "N", 1) : 2000;
    const int lanes = 4; // monitors for the client with lanes
    localvm::test::qemu_process qemu(lanes);
    run<bool>([&]() -> asio::awaitable<bool> {
        co_await qemu.wait_for_socket(std::chrono::seconds(30));
        co_return true;
    });
    auto path = qemu.socket();
    const std::vector<std::string> one{path};
    const auto& all = qemu.sockets();
    // Warm up QEMU and the caches, then interleave the runs in rounds so
    // that load from other processes on this (shared) machine hits all of
    // them alike. Rates are the best round (the least disturbed one; the
    // median is printed too), latencies pool all rounds.
    raw_serial(path, 500);
    client_serial(path, 500);
    const int rounds = 5;
    std::vector<double> raw_rates, client_rates, oob_rates, one_lane_rates, plain_rates,
        raw_oob_rates, raw_plain_rates, raw_lanes_rates;
    result raw, cli, conc;
    auto pool = [](result& into, const result& r) {
        into.latencies_us.insert(into.latencies_us.end(), r.latencies_us.begin(),
                                 r.latencies_us.end());
    };
    for (int round = 0; round < rounds; ++round) {
        auto r = raw_serial(path, n);
        auto c = client_serial(path, n);
        auto o = client_concurrent(all, n, 16, true);
        auto o1 = client_concurrent(one, n, 16, true);
        auto p = client_concurrent(one, n, 16, false);
        raw_lanes_rates.push_back(raw_pipelined_lanes(all, n, 16 / lanes, true));
        raw_oob_rates.push_back(raw_pipelined(path, n, 16, true));
        raw_plain_rates.push_back(raw_pipelined(path, n, 16, false));
        raw_rates.push_back(r.per_s);
        client_rates.push_back(c.per_s);
        oob_rates.push_back(o.per_s);
        one_lane_rates.push_back(o1.per_s);
        plain_rates.push_back(p.per_s);
        pool(raw, r);
        pool(cli, c);
        pool(conc, o);
    }
    auto best = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
    auto raw_rate = best(raw_rates), client_rate = best(client_rates), oob_rate = best(oob_rates);
    metric("qmp_raw_roundtrips_per_s", raw_rate, "1/s");
    metric("qmp_serial_roundtrips_per_s", client_rate, "1/s");
    metric("qmp_roundtrip_ratio_vs_raw", client_rate / raw_rate, "ratio");
    metric("qmp_raw_roundtrips_per_s_median", percentile(raw_rates, 0.5), "1/s");
    metric("qmp_serial_roundtrips_per_s_median", percentile(client_rates, 0.5), "1/s");
    metric("qmp_raw_p50_latency_us", percentile(raw.latencies_us, 0.5), "us");
    metric("qmp_raw_p99_latency_us", percentile(raw.latencies_us, 0.99), "us");
    metric("qmp_serial_p50_latency_us", percentile(cli.latencies_us, 0.5), "us");
    metric("qmp_serial_p99_latency_us", percentile(cli.latencies_us, 0.99), "us");
    metric("qmp_p50_latency_ratio_vs_raw", percentile(cli.latencies_us, 0.5) /
                                               percentile(raw.latencies_us, 0.5), "ratio");
    // 16 coroutines on one client with `oob`: over 4 lanes (connect_lanes),
    // and over one connection, each beside the raw loop's limit for the same.
    metric("qmp_concurrent16_oob_roundtrips_per_s", oob_rate, "1/s");
    metric("qmp_concurrent_ratio_vs_serial", oob_rate / client_rate, "ratio");
    metric("qmp_concurrent16_oob_roundtrips_per_s_median", percentile(oob_rates, 0.5), "1/s");
    metric("qmp_raw_pipelined16_4lanes_oob_roundtrips_per_s", best(raw_lanes_rates), "1/s");
    metric("qmp_concurrent_ratio_vs_raw_pipelined", oob_rate / best(raw_lanes_rates), "ratio");
    metric("qmp_concurrent16_oob_1lane_roundtrips_per_s", best(one_lane_rates), "1/s");
    metric("qmp_concurrent_1lane_ratio_vs_serial", best(one_lane_rates) / client_rate, "ratio");
    metric("qmp_raw_pipelined16_oob_roundtrips_per_s", best(raw_oob_rates), "1/s");
    metric("qmp_concurrent_1lane_ratio_vs_raw_pipelined",
           best(one_lane_rates) / best(raw_oob_rates), "ratio");
    metric("qmp_concurrent16_no_oob_roundtrips_per_s", best(plain_rates), "1/s");
    metric("qmp_raw_pipelined16_no_oob_roundtrips_per_s", best(raw_plain_rates), "1/s");
    metric("qmp_concurrent16_oob_p50_latency_us", percentile(conc.latencies_us, 0.5), "us");
    metric("qmp_concurrent16_oob_p99_latency_us", percentile(conc.latencies_us, 0.99), "us");
    metric("qmp_idle_connection_heap_bytes", static_cast<double>(idle_connection_bytes(path)), "bytes");
    return 0;
}
