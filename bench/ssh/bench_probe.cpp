// Readiness detection latency of wait_for_banner against a fake hostfwd.
//
// Each trial: a listener on 127.0.0.1 whose "sshd" comes up at a random
// moment T, 0-300 ms after the probe starts. Before T it behaves like QEMU's
// hostfwd with nothing behind it: half the trials accept and close at once
// (the guest answers the forwarded SYN with a reset), half accept and stay
// silent (the guest's network is not up); at T the silent connections get
// the banner and every later connection gets it at once. The figure is the
// probe's return time minus T.
//
// Compared, in the same run and with the same listener:
//  - probe (defaults: retry 10 ms doubling to a 30 ms cap),
//  - probe_backoff500 (retry 50 ms doubling to a 500 ms cap),
//  - poll1s: a fixed 1-second polling loop (connect, read the banner for up
//    to 100 ms, close, sleep 1 s), run for real with fewer trials.
// Trials run `concurrency` at a time on one io_context, each with its own
// listener (all waiting is idle, so they barely interfere).
//
// Usage: bench_probe [trials] [poll_trials]; prints `metric NAME VALUE UNIT`.
#include <localvm/ssh/probe.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <vector>
#include "../common/args.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

const std::string banner_text = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";

const auto rethrow = [](std::exception_ptr e) {
    if (e)
        std::rethrow_exception(e);
};

// One fake hostfwd port; `ready_at` is the moment T.
struct listener : std::enable_shared_from_this<listener> {
    tcp::acceptor acceptor;
    bool silent;
    clock_type::time_point ready_at;
    asio::steady_timer ready_timer;
    bool ready = false;
    std::vector<std::shared_ptr<tcp::socket>> held;

    listener(asio::any_io_executor ex, bool silent_, clock_type::time_point t)
        : acceptor(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), silent(silent_),
          ready_at(t), ready_timer(ex, t) {}

    static asio::awaitable<void> greet(std::shared_ptr<tcp::socket> s) {
        co_await asio::async_write(*s, asio::buffer(banner_text), asio::as_tuple(asio::use_awaitable));
    }

    asio::awaitable<void> become_ready() {
        auto self = shared_from_this();
        auto [ec] = co_await ready_timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec)
            co_return;
        ready = true;
        for (auto& s : held)
            asio::co_spawn(acceptor.get_executor(), greet(s), rethrow);
    }

    asio::awaitable<void> serve() {
        auto self = shared_from_this();
        for (;;) {
            auto s = std::make_shared<tcp::socket>(acceptor.get_executor());
            auto [ec] = co_await acceptor.async_accept(*s, asio::as_tuple(asio::use_awaitable));
            if (ec)
                co_return;
            if (ready) {
                held.push_back(s);
                asio::co_spawn(acceptor.get_executor(), greet(s), rethrow);
            } else if (silent) {
                held.push_back(s);
            } // else closed when s goes out of scope
        }
    }

    void stop() {
        acceptor.close();
        ready_timer.cancel();
        held.clear();
    }
};

struct series {
    std::string name;
    std::vector<double> ms; // latency per trial
    std::vector<double> silent_ms, closing_ms;
};

double percentile(std::vector<double> v, double p) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(idx, v.size() - 1)];
}

// The baseline: what a script with `sleep 1` between tries does.
asio::awaitable<void> poll_every_second(std::uint16_t port) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex);
    for (;;) {
        tcp::socket s(ex);
        auto [cec] = co_await s.async_connect({asio::ip::make_address("127.0.0.1"), port},
                                              asio::as_tuple(asio::use_awaitable));
        if (!cec) {
            // Read for up to 100 ms, then give up on this connection.
            std::string got;
            char buf[256];
            const auto until = clock_type::now() + 100ms;
            bool closed = false;
            while (!closed && clock_type::now() < until && got.find('\n') == std::string::npos) {
                t.expires_at(until);
                t.async_wait([&](boost::system::error_code ec) {
                    if (!ec)
                        s.cancel();
                });
                auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
                t.cancel();
                got.append(buf, n);
                closed = rec && n == 0;
            }
            if (got.starts_with("SSH-") && got.find('\n') != std::string::npos)
                co_return;
        }
        s.close();
        t.expires_after(1s);
        co_await t.async_wait(asio::use_awaitable);
    }
}

enum class method { probe_default, probe_backoff500, poll1s };

asio::awaitable<void> trial(method m, bool silent, std::chrono::milliseconds delay, series& out) {
    auto ex = co_await asio::this_coro::executor;
    const auto start = clock_type::now();
    auto l = std::make_shared<listener>(ex, silent, start + delay);
    asio::co_spawn(ex, l->serve(), rethrow);
    asio::co_spawn(ex, l->become_ready(), rethrow);
    const auto port = l->acceptor.local_endpoint().port();
    if (m == method::poll1s) {
        co_await poll_every_second(port);
    } else {
        localvm::ssh::probe_options o;
        if (m == method::probe_backoff500) {
            o.retry_interval = 50ms;
            o.max_retry_interval = 500ms;
        }
        o.timeout = 30s;
        auto got = co_await localvm::ssh::wait_for_banner("127.0.0.1", port, o);
        if (got + "\r\n" != banner_text)
            throw std::runtime_error("wrong banner: " + got);
    }
    const double ms = std::chrono::duration<double, std::milli>(clock_type::now() - l->ready_at).count();
    l->stop();
    out.ms.push_back(ms);
    (silent ? out.silent_ms : out.closing_ms).push_back(ms);
}

void run_series(method m, int trials, int concurrency, series& out, std::mt19937& rng) {
    std::uniform_int_distribution<int> delay_ms(0, 300);
    std::vector<std::pair<bool, std::chrono::milliseconds>> plan;
    for (int i = 0; i < trials; ++i)
        plan.emplace_back(i % 2 == 1, std::chrono::milliseconds(delay_ms(rng)));
    asio::io_context ctx;
    std::size_t next = 0;
    for (int w = 0; w < concurrency; ++w)
        asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
            while (next < plan.size()) {
                auto [silent, delay] = plan[next++];
                co_await trial(m, silent, delay, out);
            }
        }, rethrow);
    ctx.run();
}

void report(const series& s) {
    auto line = [&](const std::string& mode, const std::vector<double>& v) {
        std::printf("metric %s%s_detect_latency_p50_ms %.2f ms\n", s.name.c_str(), mode.c_str(), percentile(v, 0.5));
        std::printf("metric %s%s_detect_latency_p99_ms %.2f ms\n", s.name.c_str(), mode.c_str(), percentile(v, 0.99));
    };
    line("", s.ms);
    line("_closing", s.closing_ms);
    line("_silent", s.silent_ms);
    std::printf("metric %s_trials %zu count\n", s.name.c_str(), s.ms.size());
}

} // namespace

int main(int argc, char** argv) {
    const int trials = argc > 1 ? bench_args::number(argv[0], argv[1], "TRIALS", 1) : 200;
    const int poll_trials = argc > 2 ? bench_args::number(argv[0], argv[2], "POLL_TRIALS", 1) : 20;
    std::mt19937 rng(20240601);
    try {
        series probe{"probe", {}, {}, {}}, backoff{"probe_backoff500", {}, {}, {}}, poll{"poll1s", {}, {}, {}};
        run_series(method::probe_default, trials, 8, probe, rng);
        run_series(method::probe_backoff500, trials, 8, backoff, rng);
        run_series(method::poll1s, poll_trials, 8, poll, rng);
        std::printf("# %d probe trials per probe series, %d real 1 s polling trials; T uniform in 0-300 ms;\n"
                    "# half the trials accept-and-close before T, half accept-and-stay-silent.\n"
                    "# poll1s polls at 0 s (always before T) and then at ~1 s, so its figure is\n"
                    "# about 1000 ms - T; with a random phase it would average ~500 ms.\n",
                    trials, poll_trials);
        report(probe);
        report(backoff);
        report(poll);
        std::printf("metric probe_vs_poll1s_p50_speedup %.1f ratio\n",
                    percentile(poll.ms, 0.5) / std::max(percentile(probe.ms, 0.5), 0.01));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_probe: %s\n", e.what());
        return 1;
    }
    return 0;
}
