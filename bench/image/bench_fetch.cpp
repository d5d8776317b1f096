// Fetch throughput from a local HTTP server (the tests' Beast server, on its
// own thread here so that server and client do not share one), against
// `curl -o FILE` of the same URL, in one run. Each fetch downloads into an
// empty cache and checks a SHA-512 while streaming, then flushes the file
// to disk (fsync) before renaming it into place; curl only writes. Best of
// the trials for each, interleaved. The goal (image_fetch_vs_curl) is
// against that plain `curl -o FILE`. Two more baselines, for context: curl
// then `sync FILE` (the same durability fetch gives), and curl piped
// through `tee FILE | sha512sum` (the download plus the check fetch does).
// The same fetch with a SHA-256 instead (image_fetch_sha256_vs_curl), and
// each hash alone over the bytes in memory: the hash is work curl does not
// do, on fetch's one thread; fetch's CPU time less the SHA-512's is the
// rest of its work, against curl's CPU time. Also the CPU time (user + system, least of the trials) of fetch's thread
// and of the curl process, which load on the machine does not inflate.
// Usage: bench_fetch [MiB] [trials]; prints `metric NAME VALUE UNIT`.
#include <localvm/image/digest.hpp>
#include <localvm/image/fetch.hpp>
#include <localvm/process/child.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "server.hpp"
#include <sys/resource.h>
#include <time.h>
#include "../common/args.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

template <class T> T run_on(asio::io_context& io, asio::awaitable<T> op) {
    std::exception_ptr error;
    std::optional<T> out;
    asio::co_spawn(io, std::move(op), [&](std::exception_ptr e, T v) {
        error = e;
        out = std::move(v);
    });
    io.restart();
    io.run();
    if (error)
        std::rethrow_exception(error);
    return std::move(*out);
}

// CPU seconds (user + system) of this thread, and of waited-for children.
double thread_cpu() {
    ::timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}
double children_cpu() {
    ::rusage r{};
    ::getrusage(RUSAGE_CHILDREN, &r);
    auto secs = [](const ::timeval& v) {
        return static_cast<double>(v.tv_sec) + static_cast<double>(v.tv_usec) * 1e-6;
    };
    return secs(r.ru_utime) + secs(r.ru_stime);
}

} // namespace

int main(int argc, char** argv) {
    const std::size_t mib =
        argc > 1 ? static_cast<std::size_t>(bench_args::number(argv[0], argv[1], "MIB", 1, 16384))
                 : 256;
    const int trials = argc > 2 ? bench_args::number(argv[0], argv[2], "TRIALS", 1) : 3;
    std::string body(mib << 20, '\0');
    std::mt19937_64 gen(7);
    for (std::size_t i = 0; i + 8 <= body.size(); i += 8) {
        auto v = gen();
        std::memcpy(body.data() + i, &v, 8);
    }
    // Each digest over the body in memory, timed: the hash alone, the work
    // fetch does on top of what curl does.
    auto hash_rate = [&](localvm::image::digest_algorithm a, localvm::image::digest& out) {
        double best = 1e9;
        for (int t = 0; t < 3; ++t) {
            localvm::image::hasher h(a);
            auto c0 = thread_cpu();
            h.update(body);
            out = h.finish();
            best = std::min(best, thread_cpu() - c0);
        }
        return static_cast<double>(mib) / best;
    };
    localvm::image::digest expected, expected_sha256;
    const double sha512_rate = hash_rate(localvm::image::digest_algorithm::sha512, expected);
    const double sha256_rate = hash_rate(localvm::image::digest_algorithm::sha256, expected_sha256);

    asio::io_context server_io;
    auto work = asio::make_work_guard(server_io);
    localvm::test::http_server server(server_io.get_executor());
    localvm::test::route r(body);
    server.add("/bench.img", r);
    body.clear();
    body.shrink_to_fit();
    std::thread server_thread([&] { server_io.run(); });
    const std::string url = server.base() + "/bench.img";

    char tmpl[] = "/tmp/localvm-bench-image-XXXXXX";
    fs::path dir = ::mkdtemp(tmpl);
    asio::io_context io;
    double best_fetch = 1e9, best_fetch_sha256 = 1e9, best_curl = 1e9, best_curl_sync = 1e9, best_curl_sha = 1e9;
    // CPU time, which load on the machine does not inflate (the server's excluded).
    double cpu_fetch = 1e9, cpu_curl = 1e9;
    for (int t = 0; t < trials; ++t) {
        {
            localvm::process::options p;
            p.argv = {"curl", "-s", "-f", "-o", (dir / "curl.img").string(), url};
            auto t0 = clock_type::now();
            auto c0 = children_cpu();
            auto res = run_on(io, localvm::process::run_checked(p));
            (void)res;
            cpu_curl = std::min(cpu_curl, children_cpu() - c0);
            best_curl =
                std::min(best_curl, std::chrono::duration<double>(clock_type::now() - t0).count());
            fs::remove(dir / "curl.img");
        }
        {
            // The same file, flushed to disk as fetch flushes its own.
            localvm::process::options p;
            p.argv = {"sh", "-c", "curl -s -f -o \"$2\" \"$1\" && sync \"$2\"",
                      "sh", url,  (dir / "curl.img").string()};
            auto t0 = clock_type::now();
            auto res = run_on(io, localvm::process::run_checked(p));
            (void)res;
            best_curl_sync = std::min(
                best_curl_sync, std::chrono::duration<double>(clock_type::now() - t0).count());
            fs::remove(dir / "curl.img");
        }
        {
            // What a user does to verify a download: the same bytes through sha512sum.
            localvm::process::options p;
            p.argv = {"sh", "-c", "curl -s -f \"$1\" | tee \"$2\" | sha512sum >/dev/null",
                      "sh", url,  (dir / "curl.img").string()};
            auto t0 = clock_type::now();
            auto res = run_on(io, localvm::process::run_checked(p));
            (void)res;
            best_curl_sha = std::min(best_curl_sha,
                                     std::chrono::duration<double>(clock_type::now() - t0).count());
            fs::remove(dir / "curl.img");
        }
        for (const auto* want : {&expected, &expected_sha256}) {
            localvm::image::fetch_options o;
            o.cache_dir = dir / "cache";
            o.offline = false;
            auto t0 = clock_type::now();
            auto c0 = thread_cpu();
            auto path = run_on(io, localvm::image::fetch(url, *want, o));
            const double took = std::chrono::duration<double>(clock_type::now() - t0).count();
            if (want == &expected) {
                cpu_fetch = std::min(cpu_fetch, thread_cpu() - c0);
                best_fetch = std::min(best_fetch, took);
            } else {
                best_fetch_sha256 = std::min(best_fetch_sha256, took);
            }
            if (fs::file_size(path) != (mib << 20)) {
                std::fprintf(stderr, "bench_fetch: wrong size\n");
                return 1;
            }
            fs::remove_all(dir / "cache");
        }
    }
    work.reset();
    server_io.stop();
    server_thread.join();
    fs::remove_all(dir);
    double fetch_rate = static_cast<double>(mib) / best_fetch;
    double curl_rate = static_cast<double>(mib) / best_curl;
    std::printf("metric image_fetch_size %zu MiB\n", mib);
    std::printf("metric image_fetch_sha512_throughput %.1f MiB/s\n", fetch_rate);
    std::printf("metric image_curl_throughput %.1f MiB/s\n", curl_rate);
    double curl_sync_rate = static_cast<double>(mib) / best_curl_sync;
    std::printf("metric image_curl_fsync_throughput %.1f MiB/s\n", curl_sync_rate);
    double curl_sha_rate = static_cast<double>(mib) / best_curl_sha;
    std::printf("metric image_curl_sha512sum_throughput %.1f MiB/s\n", curl_sha_rate);
    std::printf("metric image_fetch_vs_curl %.2f ratio\n", fetch_rate / curl_rate);
    std::printf("metric image_fetch_vs_curl_fsync %.2f ratio\n", fetch_rate / curl_sync_rate);
    std::printf("metric image_fetch_cpu %.2f s\n", cpu_fetch);
    std::printf("metric image_curl_cpu %.2f s\n", cpu_curl);
    std::printf("metric image_fetch_vs_curl_sha512sum %.2f ratio\n", fetch_rate / curl_sha_rate);
    // The hash is work curl does not do, on fetch's one thread: fetch's CPU
    // time less the hash's (timed alone) is the rest of its work, against
    // curl's whole CPU time.
    std::printf("metric image_sha512_hash_only_throughput %.1f MiB/s\n", sha512_rate);
    const double fetch_cpu_less_hash = cpu_fetch - static_cast<double>(mib) / sha512_rate;
    std::printf("metric image_fetch_cpu_less_sha512 %.2f s\n", fetch_cpu_less_hash);
    std::printf("metric image_fetch_cpu_less_sha512_vs_curl_cpu %.2f ratio\n",
                fetch_cpu_less_hash / cpu_curl);
    const double fetch256_rate = static_cast<double>(mib) / best_fetch_sha256;
    std::printf("metric image_sha256_hash_only_throughput %.1f MiB/s\n", sha256_rate);
    std::printf("metric image_fetch_sha256_throughput %.1f MiB/s\n", fetch256_rate);
    std::printf("metric image_fetch_sha256_vs_curl %.2f ratio\n", fetch256_rate / curl_rate);
    return 0;
}
