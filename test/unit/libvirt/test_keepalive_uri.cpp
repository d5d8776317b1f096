// The keepalive machine with a fake clock, and the libvirt URI parser.
#define BOOST_TEST_MODULE libvirt_keepalive_uri
#include <localvm/libvirt/keepalive.hpp>
#include <localvm/libvirt/uri.hpp>

#include <boost/test/unit_test.hpp>

#include <algorithm>

namespace lv = localvm::libvirt;
using namespace std::chrono_literals;
using verdict = lv::keepalive::verdict;

BOOST_AUTO_TEST_CASE(keepalive_pings_after_silence_and_gives_up_after_count_pings) {
    const lv::keepalive::time_point t0{};
    lv::keepalive k({5s, 2}, t0);
    auto a = k.next(t0);
    BOOST_TEST((a.verdict == verdict::wait));
    BOOST_TEST((a.at == t0 + 5s));
    BOOST_TEST((k.next(t0 + 4s).verdict == verdict::wait));
    BOOST_TEST((k.next(t0 + 5s).verdict == verdict::send_ping));
    a = k.next(t0 + 5s);
    BOOST_TEST((a.verdict == verdict::wait));
    BOOST_TEST((a.at == t0 + 10s));
    BOOST_TEST((k.next(t0 + 10s).verdict == verdict::send_ping));
    BOOST_TEST(k.unanswered() == 2u);
    BOOST_TEST((k.next(t0 + 14s).verdict == verdict::wait));
    BOOST_TEST((k.next(t0 + 15s).verdict == verdict::dead));
    BOOST_TEST((k.next(t0 + 100s).verdict == verdict::dead)); // final
    k.on_received(t0 + 101s);
    BOOST_TEST((k.next(t0 + 101s).verdict == verdict::dead));
}

BOOST_AUTO_TEST_CASE(keepalive_traffic_resets_the_silence) {
    const lv::keepalive::time_point t0{};
    lv::keepalive k({5s, 1}, t0);
    BOOST_TEST((k.next(t0 + 5s).verdict == verdict::send_ping));
    k.on_received(t0 + 7s); // the PONG (or anything)
    BOOST_TEST(k.unanswered() == 0u);
    auto a = k.next(t0 + 8s);
    BOOST_TEST((a.verdict == verdict::wait));
    BOOST_TEST((a.at == t0 + 12s));
    BOOST_TEST((k.next(t0 + 12s).verdict == verdict::send_ping));
    BOOST_TEST((k.next(t0 + 17s).verdict == verdict::dead));
}

BOOST_AUTO_TEST_CASE(keepalive_zero_interval_is_disabled) {
    lv::keepalive k({0s, 5}, {});
    BOOST_TEST((k.next(lv::keepalive::time_point{} + 1000s).verdict == verdict::disabled));
}

namespace {
lv::uri parse(const std::string& s) {
    std::string problem;
    auto u = lv::parse_uri(s, problem);
    BOOST_TEST_REQUIRE(u.has_value(), s << ": " << problem);
    return *u;
}
std::string problem_of(const std::string& s) {
    std::string problem;
    BOOST_TEST(!lv::parse_uri(s, problem).has_value(), s);
    return problem;
}
} // namespace

BOOST_AUTO_TEST_CASE(local_uris) {
    auto u = parse("qemu:///system");
    BOOST_TEST((u.transport == lv::transport_kind::unix_socket));
    BOOST_TEST(u.driver == "qemu");
    BOOST_TEST(u.path == "/system");
    BOOST_TEST(u.name() == "qemu:///system");
    BOOST_TEST(u.socket_path() == "/var/run/libvirt/libvirt-sock");

    u = parse("qemu+unix:///system?socket=/tmp/a%20b/libvirt-sock");
    BOOST_TEST(u.socket == "/tmp/a b/libvirt-sock");
    BOOST_TEST(u.socket_path() == "/tmp/a b/libvirt-sock");
    BOOST_TEST(u.name() == "qemu:///system");

    u = parse("qemu:///session");
    BOOST_TEST(u.socket_path("/run/user/1000") == "/run/user/1000/libvirt/libvirt-sock");
    BOOST_TEST(u.socket_path() == "");
}

BOOST_AUTO_TEST_CASE(ssh_uris) {
    auto u = parse("qemu+ssh://root@example.org:2222/system?keyfile=/k/id%20x&known_hosts=/k/"
                   "kh&socket=/run/x.sock&netcat=/usr/bin/nc&proxy=netcat&no_tty=1&extra=a+b");
    BOOST_TEST((u.transport == lv::transport_kind::ssh));
    BOOST_TEST(u.user == "root");
    BOOST_TEST(u.host == "example.org");
    BOOST_TEST(u.port == 2222);
    BOOST_TEST(u.keyfile == "/k/id x");
    BOOST_TEST(u.known_hosts == "/k/kh");
    BOOST_TEST(u.socket == "/run/x.sock");
    BOOST_TEST(u.netcat == "/usr/bin/nc");
    BOOST_TEST((u.proxy == lv::ssh_proxy::netcat));
    // Remote-driver parameters stay here; the others go to the daemon.
    BOOST_TEST(u.name() == "qemu:///system?extra=a%20b");

    u = parse("qemu+ssh://[::1]:22/system");
    BOOST_TEST(u.host == "::1");
    BOOST_TEST(u.port == 22);
    BOOST_TEST(u.user.empty());
    u = parse("qemu+ssh://host/system");
    BOOST_TEST(u.port == 0);
    BOOST_TEST((u.proxy == lv::ssh_proxy::automatic));
}

BOOST_AUTO_TEST_CASE(bad_uris_are_named) {
    BOOST_TEST(problem_of("qemu") == "libvirt URI 'qemu': no '://'");
    BOOST_TEST(
        problem_of("qemu+tls://h/system") ==
        "libvirt URI 'qemu+tls://h/system': unknown transport 'tls' (unix and ssh are supported)");
    BOOST_TEST(problem_of("qemu+ssh://h:99999/system").ends_with("bad port '99999'"));
    BOOST_TEST(problem_of("qemu+ssh://h:0/system").ends_with("bad port '0'"));
    BOOST_TEST(problem_of("qemu+ssh://h:2x/system").ends_with("bad port '2x'"));
    BOOST_TEST(problem_of("qemu+ssh:///system").ends_with("ssh needs a host"));
    BOOST_TEST(problem_of("qemu://h/system").ends_with("takes no user, host or port; use +ssh"));
    BOOST_TEST(
        problem_of("qemu:///system?socket=%zz").ends_with("bad percent escape in the parameters"));
    BOOST_TEST(problem_of("qemu:///sys%4").ends_with("bad percent escape in the path"));
    BOOST_TEST(problem_of("qemu+ssh://h/system?proxy=magic")
                   .ends_with("bad proxy 'magic' (auto, netcat or native)"));
    BOOST_TEST(problem_of("qe mu:///system").ends_with("bad driver name 'qe mu'"));
    BOOST_TEST(problem_of("qemu+ssh://h").ends_with("no path (e.g. /system)"));
    BOOST_TEST(problem_of("qemu+ssh://[::1/system").ends_with("unterminated '[' in the host"));
}

// The ssh transport's argv (internal, pure): hardened ssh options, `--`, the
// destination, and the remote proxy chosen as the URI says.
#include "libvirt/transport.hpp"

namespace {
std::vector<std::string> ssh_for(const std::string& text) {
    std::string problem;
    auto u = lv::parse_uri(text, problem);
    BOOST_TEST_REQUIRE(u.has_value(), problem);
    auto argv = lv::detail::ssh_command(*u, std::chrono::seconds(7), problem);
    BOOST_TEST_REQUIRE(!argv.empty(), problem);
    return argv;
}
bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}
} // namespace

BOOST_AUTO_TEST_CASE(ssh_argv_is_hardened_and_picks_the_proxy) {
    auto a = ssh_for(
        "qemu+ssh://root@10.0.0.5:2222/system?keyfile=/k/id&known_hosts=/k/kh&socket=/run/l.sock");
    BOOST_TEST(a.front() == "ssh");
    BOOST_TEST(a[1] == "-F");
    BOOST_TEST(a[2] == "none");
    BOOST_TEST(has(a, "BatchMode=yes"));
    BOOST_TEST(has(a, "ForwardAgent=no"));
    BOOST_TEST(has(a, "UserKnownHostsFile=/k/kh"));
    BOOST_TEST(has(a, "ConnectTimeout=7"));
    BOOST_TEST(has(a, "2222"));
    BOOST_TEST(has(a, "/k/id"));
    auto dash = std::find(a.begin(), a.end(), "--");
    BOOST_TEST_REQUIRE((dash != a.end() && dash + 1 != a.end()));
    BOOST_TEST(*(dash + 1) == "root@10.0.0.5");
    BOOST_TEST(a.back() == "nc -U /run/l.sock"); // an explicit socket: netcat

    a = ssh_for("qemu+ssh://h/system?keyfile=/k/id&known_hosts=/k/kh");
    BOOST_TEST(a.back() == "sh -c 'if command -v virt-ssh-helper >/dev/null 2>&1; then exec "
                           "virt-ssh-helper \"$1\"; else exec \"$2\" -U \"$3\"; fi' sh "
                           "qemu:///system nc /var/run/libvirt/libvirt-sock");
    BOOST_TEST(*(std::find(a.begin(), a.end(), "--") + 1) == "h"); // no user: ssh's default
    a = ssh_for("qemu+ssh://h/system?keyfile=/k/id&known_hosts=/k/kh&proxy=native");
    BOOST_TEST(a.back() == "virt-ssh-helper qemu:///system");

    std::string problem;
    auto u = lv::parse_uri("qemu+ssh://h/system", problem);
    BOOST_TEST(lv::detail::ssh_command(*u, std::chrono::seconds(7), problem).empty());
    BOOST_TEST(problem == "an ssh URI needs keyfile=PATH (the private key to log in with)");
    u = lv::parse_uri("qemu+ssh://-oProxyCommand=x/system?keyfile=/k&known_hosts=/k", problem);
    BOOST_TEST(lv::detail::ssh_command(*u, std::chrono::seconds(7), problem).empty());
}

// The same URI fields as the hop the libvirt backend reaches its guests'
// forwards through (ssh::target::jump).
BOOST_AUTO_TEST_CASE(ssh_hop_carries_the_uris_user_port_key_and_known_hosts) {
    std::string problem;
    auto u = lv::parse_uri(
        "qemu+ssh://root@10.0.0.5:2222/system?keyfile=/k/id&known_hosts=/k/kh&socket=/run/l.sock",
        problem);
    BOOST_TEST_REQUIRE(u.has_value(), problem);
    auto hop = lv::detail::ssh_hop(*u, std::chrono::seconds(7), problem);
    BOOST_TEST_REQUIRE(hop.has_value(), problem);
    BOOST_TEST(hop->host == "10.0.0.5");
    BOOST_TEST(hop->port == 2222);
    BOOST_TEST(hop->user == "root");
    BOOST_TEST(hop->identity_file == "/k/id");
    BOOST_TEST(hop->known_hosts_file == "/k/kh");
    BOOST_TEST(hop->connect_timeout.count() == 7000); // milliseconds

    u = lv::parse_uri("qemu+ssh://h/system?keyfile=/k/id&known_hosts=/k/kh", problem);
    hop = lv::detail::ssh_hop(*u, std::chrono::seconds(7), problem);
    BOOST_TEST_REQUIRE(hop.has_value(), problem);
    BOOST_TEST(hop->port == 22); // the URI's default made explicit
    BOOST_TEST(hop->user == "");

    u = lv::parse_uri("qemu+ssh://h/system", problem);
    BOOST_TEST(!lv::detail::ssh_hop(*u, std::chrono::seconds(7), problem).has_value());
    BOOST_TEST(problem == "an ssh URI needs keyfile=PATH (the private key to log in with)");
    u = lv::parse_uri("qemu+ssh://-oProxyCommand=x/system?keyfile=/k&known_hosts=/k", problem);
    BOOST_TEST(!lv::detail::ssh_hop(*u, std::chrono::seconds(7), problem).has_value());
    BOOST_TEST(problem.find("ssh jump host: host \"-oProxyCommand=x\" is not a host name") == 0u,
               problem);
}
