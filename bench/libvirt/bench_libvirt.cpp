// DOMAIN_GET_STATE round trips to a private libvirtd (see
// test/integration/libvirt/private_libvirtd.hpp) on its unix socket, with a
// tiny running domain: localvm's client against libvirt's own client
// (Debian's /usr/bin/python3 with python3-libvirt, i.e. libvirt.so's remote driver, one connection)
// in the same run, serially and with 16 calls in flight (16 coroutines on one connection for
// localvm; 16 threads sharing one connection for libvirt, whose Python binding releases the GIL
// during calls). All of it twice: with libvirtd's default max_client_requests (5 calls of one
// client worked on at once; metrics without suffix) and with 16 (suffix _daemon_limit_16).
// Prints `metric NAME VALUE UNIT`. Exit 77 without root, libvirtd, QEMU or
// python3-libvirt.
#include <localvm/libvirt/client.hpp>
#include <localvm/process/child.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "private_libvirtd.hpp"

namespace asio = boost::asio;
namespace lv = localvm::libvirt;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int serial_calls = 3000;
constexpr int parallel_calls = 8000;
constexpr int in_flight = 16;
constexpr int rounds = 3;

void metric(const char* name, double value, const char* unit) {
    std::printf("metric %s %.6g %s\n", name, value, unit);
    std::fflush(stdout);
}

const char* domain = "<domain type='qemu'><name>localvm-bench</name><memory unit='MiB'>32</memory>"
                     "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
                     "<emulator>/usr/bin/qemu-system-x86_64</emulator><memballoon model='none'/>"
                     "</devices></domain>";

// libvirt's own client: rates (calls/s) serial and with 16 threads.
const char* python = R"(
import sys, threading, time, libvirt
c = libvirt.open(sys.argv[1])
d = c.lookupByName('localvm-bench')
n = int(sys.argv[2]); m = int(sys.argv[3]); k = int(sys.argv[4])
for _ in range(200): d.state()
t = time.monotonic()
for _ in range(n): d.state()
serial = n / (time.monotonic() - t)
def work():
    for _ in range(m // k): d.state()
ts = [threading.Thread(target=work) for _ in range(k)]
t = time.monotonic()
for x in ts: x.start()
for x in ts: x.join()
par = (m // k * k) / (time.monotonic() - t)
print(serial, par)
)";

asio::awaitable<double> localvm_rate(lv::client& c, lv::domain_ref d, int calls, int lanes) {
    auto ex = co_await asio::this_coro::executor;
    int done = 0;
    asio::steady_timer all(ex, clock_type::time_point::max());
    const auto t0 = clock_type::now();
    for (int i = 0; i < lanes; ++i)
        asio::co_spawn(
            ex,
            [&c, d, calls, lanes, &done, &all]() -> asio::awaitable<void> {
                for (int j = 0; j < calls / lanes; ++j)
                    co_await c.domain_get_state(d);
                if (++done == lanes)
                    all.cancel();
            },
            [](std::exception_ptr e) {
                if (e)
                    std::rethrow_exception(e);
            });
    boost::system::error_code ec;
    co_await all.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    co_return (calls / lanes * lanes) / s;
}

// One daemon with libvirtd.conf's `max_client_requests` = `limit` (how many
// calls of one client the daemon works on at once; libvirt's default is 5):
// both clients, serial and 16 in flight, in turns; metrics suffixed `suffix`.
asio::awaitable<void> measure(int limit, const std::string& suffix) {
    libvirt_test::private_libvirtd daemon("max_client_requests = " + std::to_string(limit) + "\n");
    co_await daemon.start(300s);
    auto c = co_await lv::client::connect(daemon.uri());
    auto d = co_await c.define_xml(domain);
    co_await c.create(d);
    d = co_await c.lookup_domain("localvm-bench");
    co_await localvm_rate(c, d, 200, 1); // warm-up
    // Rounds, the two clients in turn, best of each: on a shared
    // machine (and while the new domain's firmware still runs) one
    // measurement alone says more about the load than the client.
    double ours_serial = 0, ours_parallel = 0, theirs_serial = 0, theirs_parallel = 0;
    for (int round = 0; round < rounds; ++round) {
        ours_serial = std::max(ours_serial, co_await localvm_rate(c, d, serial_calls, 1));
        ours_parallel = std::max(ours_parallel, co_await localvm_rate(c, d, parallel_calls, in_flight));
        localvm::process::options py;
        py.argv = {"/usr/bin/python3",
                   "-c",
                   python,
                   "qemu+unix:///system?socket=" + daemon.socket(),
                   std::to_string(serial_calls),
                   std::to_string(parallel_calls),
                   std::to_string(in_flight)};
        auto r = co_await localvm::process::run_checked(py);
        std::istringstream in(r.out);
        double serial = 0, parallel = 0;
        in >> serial >> parallel;
        theirs_serial = std::max(theirs_serial, serial);
        theirs_parallel = std::max(theirs_parallel, parallel);
    }
    auto name = [&](const char* base) { return std::string(base) + suffix; };
    metric(name("libvirt_get_state_serial_localvm").c_str(), ours_serial, "1/s");
    metric(name("libvirt_get_state_serial_libvirt_python").c_str(), theirs_serial, "1/s");
    metric(name("libvirt_get_state_serial_speedup").c_str(), ours_serial / theirs_serial, "x");
    metric(name("libvirt_get_state_16_in_flight_localvm").c_str(), ours_parallel, "1/s");
    metric(name("libvirt_get_state_16_in_flight_libvirt_python").c_str(), theirs_parallel, "1/s");
    metric(name("libvirt_get_state_16_in_flight_speedup").c_str(), ours_parallel / theirs_parallel,
           "x");
    co_await c.destroy(d);
    co_await c.undefine(d);
    co_await c.close();
}

} // namespace

int main() {
    if (auto missing = libvirt_test::missing_tools(); !missing.empty()) {
        std::cerr << "skipping: " << missing << "\n";
        return 77;
    }
    asio::io_context ctx;
    std::exception_ptr failed;
    bool skipped = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            localvm::process::options probe;
            probe.argv = {"/usr/bin/python3", "-c", "import libvirt"};
            if (!(co_await localvm::process::run(probe)).success()) {
                std::cerr << "skipping: python3-libvirt is not installed\n";
                skipped = true;
                co_return;
            }
            // The daemon's default (5 calls of a client at once), then as
            // many as the clients keep in flight: with the default the
            // daemon, not the client, bounds the 16-in-flight rate.
            co_await measure(5, "");
            co_await measure(in_flight, "_daemon_limit_16");
        }(),
        [&](std::exception_ptr e) { failed = e; });
    ctx.run_for(900s);
    if (failed) {
        try {
            std::rethrow_exception(failed);
        } catch (const std::exception& e) {
            std::cerr << "bench_libvirt: " << e.what() << "\n";
            return 1;
        }
    }
    return skipped ? 77 : 0;
}
