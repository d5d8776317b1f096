// What a virtual network costs: TCP throughput from one tiny guest to
// another over a network (vde_switch), and from the host to a guest through
// the user-mode forward, the same receiver (busybox nc in the guest, timed
// by the guest from accept to end of stream) for both, in one run. Prints
// `metric NAME VALUE UNIT` lines.
// usage: bench_network [MIB]   (default 64; the guest: test/guests/build tiny)
#include <localvm/testing/vm.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>
#include "../common/args.hpp"

namespace asio = boost::asio;
namespace lt = localvm::testing;
using namespace std::chrono_literals;

namespace {

lt::vm_spec tiny(const std::string& name, const std::string& address) {
    lt::vm_spec s;
    s.name = name;
    s.start.cpus = 1;
    s.start.memory = "256M";
    s.start.boot = lt::guest_image::load("tiny").boot();
    s.start.ports = {{"127.0.0.1", 0, 22}, {"127.0.0.1", 0, 5001}};
    localvm::network_attachment n;
    n.network = "lan";
    n.address = address;
    s.start.networks = {n};
    return s;
}

// Starts a one-shot receiver on guest port 5001 that writes "BYTES T0 T1"
// (T in seconds of guest uptime) to /tmp/rx, and waits until it listens.
asio::awaitable<void> start_receiver(lt::vm& v) {
    co_await v.expect_status(
        "rm -f /tmp/rx; setsid nc -l -p 5001 -e sh -c 'a=$(cut -d\" \" -f1 /proc/uptime); "
        "n=$(wc -c); b=$(cut -d\" \" -f1 /proc/uptime); echo \"$n $a $b\" >/tmp/rx' "
        "</dev/null >/dev/null 2>&1 & "
        "i=0; until grep -q ':1389 [0-9A-F]*:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; do "
        "i=$((i+1)); [ $i -gt 500 ] && exit 1; usleep 10000; done");
}

// MiB/s the receiver measured, once the result is there.
asio::awaitable<double> received(lt::vm& v, std::uint64_t bytes) {
    auto out = co_await v.output("i=0; until [ -s /tmp/rx ]; do i=$((i+1)); "
                                 "[ $i -gt 3000 ] && exit 1; usleep 10000; done; cat /tmp/rx");
    std::istringstream in(out);
    std::uint64_t n = 0;
    double t0 = 0, t1 = 0;
    in >> n >> t0 >> t1;
    if (n != bytes)
        throw std::runtime_error("the receiver got " + std::to_string(n) + " bytes of " +
                                 std::to_string(bytes));
    co_return static_cast<double>(n) / (1024.0 * 1024.0) / std::max(0.01, t1 - t0);
}

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t mib =
        argc > 1 ? static_cast<std::uint64_t>(bench_args::number(argv[0], argv[1], "MIB", 1)) : 64;
    const std::uint64_t bytes = mib * 1024 * 1024;
    double guest_to_guest = 0, host_to_guest = 0;
    try {
        lt::vm_set set;
        set.add(tiny("a", "10.9.0.1/24"));
        set.add(tiny("b", "10.9.0.2/24"));
        set.run(
            [&](lt::vm_set& s) -> asio::awaitable<void> {
                // Guest to guest over the network (by name, through /etc/hosts).
                co_await start_receiver(s["b"]);
                co_await s["a"].expect_status("dd if=/dev/zero bs=64k count=" +
                                                  std::to_string(mib * 16) +
                                                  " 2>/dev/null | nc b 5001",
                                              0, 10min);
                guest_to_guest = co_await received(s["b"], bytes);

                // Host to guest through the user-mode forward.
                co_await start_receiver(s["b"]);
                auto port = co_await s["b"].host_port(5001);
                asio::ip::tcp::socket sock(co_await asio::this_coro::executor);
                co_await sock.async_connect({asio::ip::make_address("127.0.0.1"), port},
                                            asio::use_awaitable);
                std::string chunk(1 << 16, '\0');
                for (std::uint64_t sent = 0; sent < bytes; sent += chunk.size())
                    co_await asio::async_write(sock, asio::buffer(chunk), asio::use_awaitable);
                sock.shutdown(asio::ip::tcp::socket::shutdown_send);
                host_to_guest = co_await received(s["b"], bytes);
            },
            30min, "network throughput");
    } catch (const std::exception& e) {
        std::cerr << "bench_network: " << e.what() << "\n";
        return 1;
    }
    std::printf("metric net_guest_to_guest_vde_mib_per_s %.1f MiB/s\n", guest_to_guest);
    std::printf("metric net_host_to_guest_usermode_forward_mib_per_s %.1f MiB/s\n", host_to_guest);
    std::printf("metric net_guest_to_guest_vs_forward_ratio %.2f ratio\n",
                guest_to_guest / std::max(0.01, host_to_guest));
    std::printf("metric net_transfer_size_mib %llu MiB\n", static_cast<unsigned long long>(mib));
    return 0;
}
