// Virtual networks on vde_switch. The definition (data directory) lists the
// members; the switch runs detached with a lock on its pid file, as QEMU
// does, so that any process finds it; a lock file serialises calls.
#include "detail/race.hpp"
#include "lock.hpp"
#include "sys/file.hpp"
#include "sys/secure_dir.hpp"
#include "watch.hpp"

#include <localvm/atomic_file.hpp>
#include <localvm/console/log.hpp>
#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qemu/network.hpp>
#include <localvm/qemu/options.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>

#include <arpa/inet.h>
#include <signal.h>
#include <sys/un.h>
#include <unistd.h>

namespace localvm::qemu {
namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view networks_dir = "@networks"; // '@' is in no VM name

std::string ip_of(const std::string& address) { return address.substr(0, address.find('/')); }

std::vector<network_member> parse_members(const std::string& text, const fs::path& file) {
    std::vector<network_member> out;
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    const json::array* members = nullptr;
    if (!ec && v.is_object())
        if (auto* m = v.get_object().if_contains("members"); m && m->is_array())
            members = &m->get_array();
    if (!members)
        throw_error(errc::protocol_error, "network definition " + file.string() + " is malformed");
    auto str = [](const json::object& o, const char* key) {
        auto* x = o.if_contains(key);
        return x && x->is_string() ? std::string(x->get_string()) : std::string();
    };
    for (const auto& m : *members) {
        if (!m.is_object())
            continue;
        const auto& o = m.get_object();
        network_member nm;
        nm.vm = str(o, "vm");
        nm.address = str(o, "address");
        nm.mac = str(o, "mac");
        nm.vm_data = str(o, "vm_data");
        nm.vm_pidfile = str(o, "vm_pidfile");
        if (!nm.vm.empty())
            out.push_back(std::move(nm));
    }
    return out;
}

std::string render_members(const std::vector<network_member>& members) {
    json::array a;
    for (const auto& m : members)
        a.push_back(json::object{{"vm", m.vm},
                                 {"address", m.address},
                                 {"mac", m.mac},
                                 {"vm_data", m.vm_data.string()},
                                 {"vm_pidfile", m.vm_pidfile.string()}});
    return json::serialize(json::object{{"members", std::move(a)}}) + "\n";
}

bool member_running(const network_member& m) {
    if (m.vm_pidfile.empty())
        return false;
    try {
        return detail::lock_owner(m.vm_pidfile).has_value();
    } catch (const localvm::error&) {
        return false;
    }
}

bool member_exists(const network_member& m) {
    std::error_code ec;
    return !m.vm_data.empty() && fs::exists(m.vm_data, ec);
}

void make_network_directories(const network_layout& l) {
    sys::ensure_private_dir(l.runtime.parent_path().parent_path(), l.runtime,
                            "network runtime directory");
    sys::ensure_private_dir(l.data.parent_path().parent_path(), l.data, "network data directory");
}

asio::awaitable<detail::vm_lock> lock_network(const network_layout& l, const network_options& o) {
    co_return co_await detail::vm_lock::acquire(l.lock, l.runtime / "lock.sock", o.lock_timeout,
                                                "network " + o.name,
                                                [&l] { make_network_directories(l); });
}

std::vector<network_member> read_members(const network_layout& l, const std::string& name) {
    if (!fs::exists(l.definition))
        throw_error(errc::not_found, "network " + name + " does not exist (create it first: "
                                                         "localvm network create " +
                                         name + ")");
    return parse_members(sys::read_file(l.definition), l.definition);
}

// Another existing VM's claim on the address's IP, as an error.
void check_address_free(const std::vector<network_member>& members, const std::string& vm,
                        const std::string& address, const std::string& network) {
    if (address.empty())
        return;
    for (const auto& m : members)
        if (m.vm != vm && !m.address.empty() && ip_of(m.address) == ip_of(address) &&
            member_exists(m))
            throw_error(errc::already_exists, "address " + ip_of(address) + " on network " +
                                                  network + " is VM " + m.vm +
                                                  "'s already; give VM " + vm + " another one");
}

// Records (or replaces) vm's entry. Entries of VMs that joined once and no
// longer exist go, and so does a reservation of the same IP by a VM that
// does not exist (yet).
void put_member(std::vector<network_member>& members, network_member m) {
    std::erase_if(members, [&](const network_member& x) {
        return x.vm == m.vm || (!x.vm_pidfile.empty() && !member_exists(x)) ||
               (!m.address.empty() && !x.address.empty() && ip_of(x.address) == ip_of(m.address) &&
                !member_exists(x));
    });
    members.push_back(std::move(m));
    std::sort(members.begin(), members.end(),
              [](const network_member& a, const network_member& b) { return a.vm < b.vm; });
}

} // namespace

std::string check_network_name(std::string_view name) { return check_name(name, "network name"); }

network_layout make_network_layout(const network_options& opts) {
    if (auto problem = check_network_name(opts.name); !problem.empty())
        throw_error(errc::invalid_argument, problem);
    network_layout l;
    l.data = data_root(opts.data_dir) / networks_dir / opts.name;
    l.runtime = runtime_root(opts.runtime_dir) / networks_dir / opts.name;
    l.definition = l.data / "network.json";
    l.switch_dir = l.runtime / "switch";
    l.pidfile = l.runtime / "switch.pid";
    l.log = l.runtime / "switch.log";
    l.exit_status = l.runtime / "exit-status";
    l.lock = l.runtime / "lock";
    // The switch's control socket and the ports' sockets (QEMU's are
    // "<pid>.<n>"-like, a few more bytes) live in switch_dir.
    constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;
    if ((l.switch_dir / "ctl").string().size() + 16 > max_socket_path)
        throw_error(errc::invalid_argument, "the switch's socket directory " +
                                                l.switch_dir.string() +
                                                " is too long for unix sockets; choose a "
                                                "shorter runtime directory or network name");
    return l;
}

std::vector<std::string> list_networks(const fs::path& data_dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(data_root(data_dir) / networks_dir, ec), end; !ec && it != end;
         it.increment(ec)) {
        auto n = it->path().filename().string();
        if (check_network_name(n).empty() && fs::exists(it->path() / "network.json"))
            names.push_back(std::move(n));
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string default_mac(std::string_view vm, std::string_view network) {
    // FNV-1a 64 over "vm\0network": stable across builds and hosts.
    std::uint64_t h = 0xcbf29ce484222325ull;
    auto feed = [&](std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 0x100000001b3ull;
        }
    };
    feed(vm);
    feed(std::string_view("\0", 1));
    feed(network);
    unsigned char b[6];
    for (int i = 0; i < 6; ++i)
        b[i] = static_cast<unsigned char>(h >> (8 * i));
    b[0] = static_cast<unsigned char>((b[0] & 0xfc) | 0x02); // local, unicast
    if (b[0] == 0x52)
        b[0] = 0x56; // never QEMU's 52:54:00 range
    char out[18];
    std::snprintf(out, sizeof out, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4],
                  b[5]);
    return out;
}

std::optional<std::string> normalize_mac(std::string_view mac) {
    if (mac.size() != 17)
        return std::nullopt;
    std::string out;
    bool nonzero = false;
    for (std::size_t i = 0; i < 17; ++i) {
        char c = mac[i];
        if (i % 3 == 2) {
            if (c != ':')
                return std::nullopt;
            out += ':';
            continue;
        }
        if (c >= 'A' && c <= 'F')
            c = static_cast<char>(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return std::nullopt;
        nonzero = nonzero || c != '0';
        out += c;
    }
    unsigned first = static_cast<unsigned>(std::stoul(out.substr(0, 2), nullptr, 16));
    if (!nonzero || (first & 1))
        return std::nullopt;
    return out;
}

std::optional<ipv4_prefix> parse_ipv4_prefix(std::string_view text, std::string& why) {
    ipv4_prefix r;
    auto slash = text.find('/');
    r.address = std::string(text.substr(0, slash));
    if (slash != std::string_view::npos) {
        auto p = text.substr(slash + 1);
        unsigned n = 0;
        auto [end, err] = std::from_chars(p.data(), p.data() + p.size(), n);
        if (err != std::errc() || end != p.data() + p.size() || p.empty() || n < 1 || n > 32) {
            why = "\"" + std::string(text) + "\": the prefix must be a number 1..32";
            return std::nullopt;
        }
        r.prefix = n;
    }
    in_addr a{};
    if (r.address.empty() || ::inet_pton(AF_INET, r.address.c_str(), &a) != 1) {
        why = "\"" + std::string(text) + "\" is not an IPv4 address like 10.0.0.1/24";
        return std::nullopt;
    }
    const std::uint32_t ip = ntohl(a.s_addr);
    if ((ip & 0xffffff00u) == 0x0a000200u) {
        why = "\"" + std::string(text) +
              "\" is inside 10.0.2.0/24, the VM's user-mode network; choose another subnet";
        return std::nullopt;
    }
    if (ip == 0 || (ip >> 24) == 127 || (ip >> 28) == 0xe || ip == 0xffffffffu) {
        why = "\"" + std::string(text) +
              "\" is not a host address (0.0.0.0, loopback, multicast or broadcast)";
        return std::nullopt;
    }
    return r;
}

virtual_network::virtual_network(asio::any_io_executor executor, network_options opts)
    : executor_(std::move(executor))
    , opts_(std::move(opts))
    , layout_(make_network_layout(opts_)) {}

asio::awaitable<void> virtual_network::create() {
    make_network_directories(layout_);
    auto lock = co_await lock_network(layout_, opts_);
    if (fs::exists(layout_.definition))
        throw_error(errc::already_exists, "network " + opts_.name + " already exists");
    write_file_atomic(layout_.definition, render_members({}), fs::perms(0600));
}

asio::awaitable<bool> virtual_network::exists() { co_return fs::exists(layout_.definition); }

asio::awaitable<network_status> virtual_network::query() {
    network_status st;
    st.exists = fs::exists(layout_.definition);
    if (st.exists) {
        st.members = parse_members(sys::read_file(layout_.definition), layout_.definition);
        for (auto& m : st.members)
            m.running = member_running(m);
    }
    if (fs::exists(layout_.pidfile))
        st.switch_pid = detail::lock_owner(layout_.pidfile);
    co_return st;
}

asio::awaitable<void> virtual_network::remove() {
    if (!sys::lstat_of(layout_.data) && !sys::lstat_of(layout_.runtime))
        co_return;
    make_network_directories(layout_);
    auto lock = co_await lock_network(layout_, opts_);
    if (fs::exists(layout_.definition)) {
        std::string users;
        for (const auto& m : parse_members(sys::read_file(layout_.definition), layout_.definition))
            if (member_running(m))
                users += (users.empty() ? "" : ", ") + m.vm;
        if (!users.empty())
            throw_error(errc::busy, "network " + opts_.name + " is in use by running VM(s) " +
                                        users + "; stop them first");
    }
    if (auto owner = detail::lock_owner(layout_.pidfile)) {
        auto proc = process::pidfd::open(*owner);
        proc.send_signal(SIGTERM);
        if (!co_await proc.wait_exit(milliseconds(5000))) {
            proc.send_signal(SIGKILL);
            if (!co_await proc.wait_exit(milliseconds(5000)))
                throw_error(errc::process_failed, "the switch of network " + opts_.name +
                                                      " (pid " + std::to_string(*owner) +
                                                      ") outlived SIGKILL");
        }
        // Its supervisor records the end right after; let it, before deleting.
        co_await detail::wait_for_path(layout_.exit_status, milliseconds(2000));
    }
    sys::remove_tree(layout_.data);
    sys::remove_tree(layout_.runtime);
}

asio::awaitable<void> virtual_network::reserve(std::string vm, fs::path vm_data,
                                               std::string address) {
    std::string why;
    if (!parse_ipv4_prefix(address, why))
        throw_error(errc::invalid_argument, "network " + opts_.name + ": address " + why);
    make_network_directories(layout_);
    auto lock = co_await lock_network(layout_, opts_);
    auto members = read_members(layout_, opts_.name);
    check_address_free(members, vm, address, opts_.name);
    network_member m;
    for (const auto& x : members)
        if (x.vm == vm)
            m = x; // keep what a start recorded (mac, pid file)
    m.vm = vm;
    m.vm_data = fs::absolute(vm_data);
    m.address = address;
    put_member(members, std::move(m));
    write_file_atomic(layout_.definition, render_members(members), fs::perms(0600));
}

asio::awaitable<network_join> virtual_network::join(std::string vm, fs::path vm_data,
                                                    fs::path vm_pidfile, std::string mac,
                                                    std::string address) {
    make_network_directories(layout_);
    auto lock = co_await lock_network(layout_, opts_);
    auto members = read_members(layout_, opts_.name);
    check_address_free(members, vm, address, opts_.name);
    co_await ensure_switch();
    network_member m;
    m.vm = vm;
    m.address = address;
    m.mac = std::move(mac);
    m.vm_data = fs::absolute(vm_data);
    m.vm_pidfile = fs::absolute(vm_pidfile);
    put_member(members, std::move(m));
    write_file_atomic(layout_.definition, render_members(members), fs::perms(0600));
    network_join j;
    j.switch_dir = layout_.switch_dir;
    for (const auto& x : members)
        if (x.vm != vm && !x.address.empty())
            j.peers.emplace_back(x.vm, ip_of(x.address));
    co_return j;
}

// Under the network's lock: the switch runs when this returns.
asio::awaitable<void> virtual_network::ensure_switch() {
    if (detail::lock_owner(layout_.pidfile))
        co_return;
    // A switch that died leaves its sockets: vde_switch refuses a control
    // socket that exists.
    std::error_code ec;
    fs::remove_all(layout_.switch_dir, ec);
    fs::remove(layout_.log, ec);
    // Made here, not by the switch, so that its control socket can be
    // watched for from the start.
    if (!fs::create_directory(layout_.switch_dir, ec) || ec)
        throw_error(errc::io_error, "cannot make " + layout_.switch_dir.string() + ": " +
                                        (ec ? ec.message() : std::string("it exists")));
    fs::permissions(layout_.switch_dir, fs::perms::owner_all, ec);
    process::detached_options d;
    d.argv = {opts_.switch_binary.string(), "--sock", layout_.switch_dir.string(), "--dirmode",
              "0700", "--mode", "0600"};
    d.stdout_file = layout_.log;
    d.stderr_file = layout_.log;
    d.exit_status_file = layout_.exit_status;
    d.lock_file = layout_.pidfile;
    d.hold_stdin = true; // in the foreground, vde_switch ends at end of file on stdin
    auto proc = co_await process::launch_detached(d);
    const auto ctl = layout_.switch_dir / "ctl";
    auto up = co_await localvm::detail::race(
        detail::wait_for_path(ctl, opts_.start_timeout),
        process::wait_exit(proc.pid(), opts_.start_timeout));
    if (up.index() == 0 && std::get<0>(up)) {
        if (co_await proc.hand_over())
            co_return;
    }
    proc.abandon();
    co_await process::wait_exit(proc.pid(), milliseconds(5000));
    auto said = console::read_tail(layout_.log, 20);
    if (up.index() == 0 && !std::get<0>(up))
        throw_error(errc::timeout, "waiting " + std::to_string(opts_.start_timeout.count()) +
                                       " ms for the switch of network " + opts_.name +
                                       " (no " + ctl.string() + ")" +
                                       (said.empty() ? "" : ":\n" + said));
    throw_error(errc::process_failed, opts_.switch_binary.string() + " for network " +
                                          opts_.name + " exited during start" +
                                          (said.empty() ? "" : ":\n" + said));
}

} // namespace localvm::qemu
