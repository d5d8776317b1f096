#include <localvm/console/log.hpp>
#include <localvm/error.hpp>
#include <localvm/libvirt/client.hpp>
#include <localvm/libvirt/uri.hpp>
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qemu/network.hpp>
#include <localvm/ssh/keygen.hpp>
#include <localvm/testing/error.hpp>
#include <localvm/testing/placement.hpp>
#include <localvm/testing/run.hpp>
#include <localvm/testing/vm.hpp>

#include "remove_vm.hpp"
#include "detail/backoff.hpp"
#include "detail/race.hpp"
#include "sys/errno.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <signal.h>
#include <stdlib.h>

namespace localvm::testing {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

std::string backticked(const std::string& s) { return "`" + s + "`"; }

std::string joined_lines(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines)
        s += l + "\n";
    return s;
}

// Indents a block of guest output under a failure message.
std::string indented(const std::string& text) {
    if (text.empty())
        return "  (nothing)\n";
    std::string out = "  | ";
    for (std::size_t i = 0; i < text.size(); ++i) {
        out += text[i];
        if (text[i] == '\n' && i + 1 < text.size())
            out += "  | ";
    }
    if (out.back() != '\n')
        out += '\n';
    return out;
}

std::string tail_block(const std::string& title, const std::string& text) {
    return "---- " + title + " ----\n" + (text.empty() ? std::string("(empty)\n") : text) +
           (text.empty() || text.back() == '\n' ? "" : "\n");
}

// The console and QEMU stderr tails of VM `name`, as a failed test shows them.
std::string tails_of(const std::string& name, const qemu::layout& files, std::size_t lines) {
    return tail_block("vm '" + name + "': serial console (" + files.console_log.string() + ")",
                      console::read_tail(files.console_log, lines)) +
           tail_block("vm '" + name + "': QEMU stderr (" + files.qemu_log.string() + ")",
                      console::read_tail(files.qemu_log, lines));
}


qemu::network_options network_options_of(const std::string& name, const fs::path& data_dir,
                                         const fs::path& runtime_dir) {
    qemu::network_options no;
    no.name = name;
    no.data_dir = data_dir;
    no.runtime_dir = runtime_dir;
    return no;
}

// A test VM's disk is thrown away: stopped without waiting for ACPI, removed.
asio::awaitable<void> stop_and_remove(qemu::options o) {
    o.stop.powerdown_timeout = milliseconds(0);
    qemu::manager mgr(co_await asio::this_coro::executor, o);
    if (co_await mgr.running())
        co_await mgr.stop();
    co_await mgr.remove();
}

libvirt::manager_options libvirt_options_of(const vm_spec& spec) {
    libvirt::manager_options lo;
    lo.uri = spec.connect;
    lo.pool = spec.pool;
    lo.vm = spec.options;
    return lo;
}

// The same through libvirt, on the VM's host.
asio::awaitable<void> stop_and_remove_libvirt(libvirt::manager_options lo) {
    lo.vm.stop.powerdown_timeout = milliseconds(0);
    libvirt::manager mgr(co_await asio::this_coro::executor, lo);
    if (co_await mgr.running())
        co_await mgr.stop();
    co_await mgr.remove();
}

asio::awaitable<void> stop_and_remove_spec(vm_spec spec) {
    if (spec.connect.empty())
        co_await stop_and_remove(spec.options);
    else
        co_await stop_and_remove_libvirt(libvirt_options_of(spec));
}

// Teardown of one thing: `remove` within `limit`; when that fails, the
// process `find_pid` names is SIGKILLed (none may survive a test). Every
// failure is added to `problems`.
void remove_or_kill(std::string& problems, const std::string& what,
                    std::chrono::seconds limit, std::function<asio::awaitable<void>()> remove,
                    std::function<asio::awaitable<std::optional<pid_t>>()> find_pid) {
    try {
        run_coroutine(remove, limit, "teardown of " + what);
    } catch (const std::exception& e) {
        problems += std::string(e.what()) + "\n";
        try {
            run_coroutine(
                [&]() -> asio::awaitable<void> {
                    if (auto pid = co_await find_pid()) {
                        ::kill(*pid, SIGKILL);
                        co_await process::wait_exit(*pid, std::chrono::seconds(10));
                    }
                },
                std::chrono::seconds(15), "kill of " + what);
        } catch (const std::exception& e2) {
            problems += std::string(e2.what()) + "\n";
        }
    }
}

} // namespace

void detail::remove_vm(std::string& problems, qemu::options opts) {
    opts.stop.quit_timeout = std::chrono::seconds(5);
    remove_or_kill(
        problems, "vm '" + opts.name + "'", std::chrono::seconds(60),
        [&]() { return stop_and_remove(opts); },
        [&]() -> asio::awaitable<std::optional<pid_t>> {
            qemu::manager mgr(co_await asio::this_coro::executor, opts);
            co_return co_await mgr.pid();
        });
}

// ---- guest_image ----

std::string guest_image::operator[](const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? std::string() : it->second;
}

direct_boot guest_image::boot(const std::string& extra_cmdline) const {
    if ((*this)["KERNEL"].empty())
        throw_error(errc::not_found, "guest " + folder.string() + " has no KERNEL for direct boot");
    std::string cmdline = (*this)["CMDLINE"];
    if (!extra_cmdline.empty())
        cmdline += (cmdline.empty() ? "" : " ") + extra_cmdline;
    return direct_boot{(*this)["KERNEL"], (*this)["INITRD"], cmdline};
}

guest_image guest_image::load(const std::string& name) {
    fs::path cache;
    if (const char* c = std::getenv("LOCALVM_GUEST_CACHE"); c && *c)
        cache = c;
    else
        cache = fs::path(std::getenv("HOME") ? std::getenv("HOME") : "/root") / ".cache" /
                "localvm" / "guests";
    auto file = cache / name / "env";
    std::ifstream in(file);
    if (!in)
        throw_error(errc::not_found, "test guest " + file.string() +
                                         " is missing: build it with test/guests/build " + name);
    guest_image g;
    g.folder = file.parent_path();
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find('=');
        if (eq == std::string::npos || line.starts_with('#'))
            continue;
        auto key = line.substr(0, eq);
        auto v = line.substr(eq + 1);
        if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
            v = v.substr(1, v.size() - 2);
        // Files are the guest folder's, wherever it was built.
        if (key == "KERNEL" || key == "INITRD" || key == "DISK")
            v = (g.folder / fs::path(v).filename()).string();
        g.values[key] = v;
    }
    return g;
}

// ---- vm_spec ----

qemu::options vm_spec::test_options() {
    qemu::options o;
    o.accel = qemu::accelerator::tcg;
    o.net = qemu::network::restricted;
    return o;
}

// ---- vm ----

qemu::manager& vm::manager() {
    if (!qemu_)
        throw_error(errc::unsupported, "vm '" + name_ + "' runs through libvirt (" + host_ +
                                           "), not the QEMU backend; use backend()");
    return *qemu_;
}

const qemu::layout& vm::files() const {
    return qemu_ ? qemu_->files() : libvirt_->files();
}

std::string vm::console_tail(std::size_t lines) const {
    return console::read_tail(files().console_log, lines);
}

asio::awaitable<shell_result> vm::expect_status(std::string command, int status,
                                                milliseconds timeout) {
    pending p("shell " + backticked(command) + " on vm '" + name_ + "'");
    shell_options so;
    so.timeout = timeout;
    auto r = co_await manager_->shell(command, so);
    if (r.exit_status != status)
        throw_error(kit_errc::check_failed, backticked(command) + " on vm '" + name_ +
                                                "' exited with " + std::to_string(r.exit_status) +
                                                ", expected " + std::to_string(status) +
                                                "; its output:\n" + indented(r.output));
    co_return r;
}

asio::awaitable<std::string> vm::output(std::string command, milliseconds timeout) {
    pending p("shell " + backticked(command) + " on vm '" + name_ + "'");
    std::vector<std::string> out, err;
    shell_options so;
    so.timeout = timeout;
    so.out = [&](std::string_view l) { out.emplace_back(l); };
    so.err = [&](std::string_view l) { err.emplace_back(l); };
    auto r = co_await manager_->shell(command, so);
    if (r.exit_status != 0)
        throw_error(kit_errc::check_failed,
                    backticked(command) + " on vm '" + name_ + "' exited with " +
                        std::to_string(r.exit_status) + ", expected 0; stdout:\n" +
                        indented(joined_lines(out)) + "stderr:\n" + indented(joined_lines(err)));
    co_return joined_lines(out);
}

asio::awaitable<void> vm::expect_output(std::string command, std::string expected) {
    auto got = co_await output(command);
    if (got != expected)
        throw_error(kit_errc::check_failed, backticked(command) + " on vm '" + name_ +
                                                "' printed:\n" + indented(got) + "expected:\n" +
                                                indented(expected));
}

asio::awaitable<std::string> vm::wait_for_console(std::string text, milliseconds timeout) {
    pending p("console text \"" + text + "\" on vm '" + name_ + "'");
    co_return co_await manager_->wait_for_console(text, timeout);
}

asio::awaitable<port_forward> vm::forward_to(std::uint16_t guest_port) {
    for (const auto& f : co_await manager_->ports())
        if (f.guest_port == guest_port)
            co_return f;
    throw_error(errc::not_found, "vm '" + name_ + "' has no port forward to guest port " +
                                     std::to_string(guest_port));
}

asio::awaitable<std::uint16_t> vm::host_port(std::uint16_t guest_port) {
    co_return (co_await forward_to(guest_port)).host_port;
}

asio::awaitable<std::uint16_t> vm::wait_for_port(std::uint16_t guest_port, milliseconds timeout,
                                                 milliseconds settle) {
    pending p("guest port " + std::to_string(guest_port) + " on vm '" + name_ + "'");
    auto forward = co_await forward_to(guest_port);
    const std::string address = forward.host_address;
    const std::uint16_t port = forward.host_port;
    auto ex = co_await asio::this_coro::executor;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    asio::ip::tcp::endpoint ep(asio::ip::make_address(address), port);
    localvm::detail::backoff pause(milliseconds(50), milliseconds(1000));
    for (int attempt = 1;; ++attempt) {
        if (!co_await manager_->running())
            throw_error(errc::guest_died, "vm '" + name_ + "' stopped while waiting for guest port " +
                                              std::to_string(guest_port) + "\n" +
                                              console_tail(20));
        asio::ip::tcp::socket sock(ex);
        boost::system::error_code ec;
        co_await sock.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
        if (!ec) {
            // QEMU accepted; does the guest? A refusal closes the connection.
            char byte;
            boost::system::error_code rec, tec;
            asio::steady_timer quiet(ex, settle);
            auto r = co_await localvm::detail::race(
                sock.async_read_some(asio::buffer(&byte, 1),
                                     asio::redirect_error(asio::use_awaitable, rec)),
                quiet.async_wait(asio::redirect_error(asio::use_awaitable, tec)));
            if (r.index() == 1 || !rec)
                co_return port;
        }
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline)
            throw_error(errc::timeout, "guest port " + std::to_string(guest_port) + " of vm '" +
                                           name_ + "' (host " + address + ":" +
                                           std::to_string(port) + ") accepted no connection in " +
                                           std::to_string(timeout.count()) + " ms (" +
                                           std::to_string(attempt) + " attempts)");
        asio::steady_timer t(ex, pause.next(deadline - now));
        co_await t.async_wait(asio::use_awaitable);
    }
}

asio::awaitable<void> vm::copy_in(fs::path local, std::string remote, sync_options opts) {
    pending p("copy of " + local.string() + " to vm '" + name_ + "'");
    co_await manager_->sync(local, remote, opts);
}

asio::awaitable<void> vm::copy_out(std::string remote, fs::path local, sync_options opts) {
    pending p("copy of " + remote + " from vm '" + name_ + "'");
    opts.direction = sync_direction::from_guest;
    co_await manager_->sync(fs::path(remote), local.string(), opts);
}

std::string vm::report(std::size_t lines) const {
    if (!manager_)
        return {};
    return tails_of(name_, files(), lines);
}

// ---- vm_set ----

vm_set::vm_set() {
    fs::path tmp = "/tmp";
    if (const char* t = std::getenv("TMPDIR"); t && *t)
        tmp = t;
    auto tmpl = (tmp / "localvm-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
        sys::throw_errno(errc::io_error, "cannot make a temporary directory under " + tmp.string(),
                         errno);
    root_ = tmpl;
    key_ = root_ / "id ed25519";
    try {
        run_coroutine(
            [this]() -> asio::awaitable<void> {
                public_key_ = co_await ssh::ensure_key_pair(key_, "localvm-test");
            },
            std::chrono::seconds(60), "ssh-keygen");
    } catch (...) {
        std::error_code ec;
        fs::remove_all(root_, ec);
        throw;
    }
}

vm_set::~vm_set() {
    auto problems = teardown();
    if (!problems.empty() && on_failure)
        on_failure("localvm::testing::vm_set teardown:\n" + problems);
}

void vm_set::add(vm_spec spec) {
    if (auto problem = qemu::check_name(spec.name); !problem.empty())
        throw_error(errc::invalid_argument, "test VM name: " + problem);
    for (const auto& m : members_)
        if (m->spec.name == spec.name)
            throw_error(errc::invalid_argument, "test VM '" + spec.name + "' added twice");
    if (!spec.connect.empty()) {
        std::string problem;
        if (!libvirt::parse_uri(spec.connect, problem))
            throw_error(errc::invalid_argument,
                        "test VM '" + spec.name + "': libvirt URI " + spec.connect + ": " + problem);
        if (!spec.snapshot.empty() || !spec.start.networks.empty())
            throw_error(errc::unsupported, "test VM '" + spec.name +
                                               "': snapshots and virtual networks need the QEMU "
                                               "backend (no connect)");
    }
    auto& o = spec.options;
    if (o.name.empty())
        o.name = spec.name;
    if (o.data_dir.empty())
        o.data_dir = root_ / "data";
    if (o.runtime_dir.empty())
        o.runtime_dir = root_ / "run";
    if (o.ssh_identity_file.empty())
        o.ssh_identity_file = key_;
    if (spec.start.ssh_authorized_key.empty())
        spec.start.ssh_authorized_key = public_key_;
    if (spec.start.ports.empty())
        spec.start.ports = {port_forward{"127.0.0.1", 0, 22}};
    for (const auto& n : spec.start.networks) {
        if (n.address.empty())
            continue;
        std::string why;
        auto mine = qemu::parse_ipv4_prefix(n.address, why);
        if (!mine)
            throw_error(errc::invalid_argument, "test VM '" + spec.name + "': " + why);
        for (const auto& m : members_)
            for (const auto& other : m->spec.start.networks) {
                std::string ignored;
                auto theirs = qemu::parse_ipv4_prefix(other.address, ignored);
                if (other.network == n.network && theirs && theirs->address == mine->address)
                    throw_error(errc::invalid_argument,
                                "test VM '" + spec.name + "': address " + mine->address +
                                    " on network " + n.network + " is test VM '" +
                                    m->spec.name + "''s already");
            }
    }
    auto m = std::make_unique<member>();
    m->spec = std::move(spec);
    m->handle.name_ = m->spec.name;
    m->handle.host_ = m->spec.connect;
    members_.push_back(std::move(m));
}

void vm_set::set_hosts(std::vector<pool_host> hosts) {
    for (const auto& h : hosts) {
        std::string problem;
        if (!libvirt::parse_uri(h.uri, problem))
            throw_error(errc::invalid_argument, "pool host " + h.uri + ": " + problem);
        if (h.pool.empty())
            throw_error(errc::invalid_argument, "pool host " + h.uri + ": empty storage pool");
    }
    hosts_ = std::move(hosts);
}

// Each VM that has no host yet (and could run through libvirt) gets the one
// `place` picks from what the daemons report now; the set's VMs already on
// a host count with their vCPUs (their memory is in the free memory).
asio::awaitable<void> vm_set::place_members() {
    std::vector<member*> todo;
    for (auto& m : members_)
        if (m->spec.connect.empty() && m->spec.snapshot.empty() && m->spec.start.networks.empty())
            todo.push_back(m.get());
    if (hosts_.empty() || todo.empty())
        co_return;
    std::vector<host_capacity> capacity;
    for (const auto& h : hosts_) {
        pending p("the capacity of libvirt host " + h.uri);
        auto c = co_await libvirt::client::connect(h.uri);
        auto info = co_await c.node_info();
        auto free = co_await c.node_free_memory();
        co_await c.close();
        host_capacity hc;
        hc.name = h.uri;
        hc.total_memory_bytes = info.memory_kib * 1024;
        hc.free_memory_bytes = free;
        hc.cpus = info.cpus > 0 ? static_cast<unsigned>(info.cpus) : 0;
        for (const auto& m : members_)
            if (m->spec.connect == h.uri)
                hc.cpus_in_use += m->spec.start.cpus;
        capacity.push_back(std::move(hc));
    }
    std::vector<vm_demand> demands;
    for (auto* m : todo) {
        boost::system::error_code ec;
        vm_demand d;
        d.name = m->spec.name;
        d.memory_bytes = qemu::parse_memory_mib(m->spec.start.memory, ec).value_or(0) * 1024 * 1024;
        d.cpus = m->spec.start.cpus;
        demands.push_back(std::move(d));
    }
    auto where = place(capacity, demands);
    for (std::size_t i = 0; i < todo.size(); ++i) {
        todo[i]->spec.connect = hosts_[where[i]].uri;
        todo[i]->spec.pool = hosts_[where[i]].pool;
        todo[i]->handle.host_ = todo[i]->spec.connect;
    }
}

fs::path vm_set::blank_base() { return root_ / "blank-64M.qcow2"; }

asio::awaitable<void> vm_set::boot(member& m) {
    localvm::manager& mgr = *m.handle.manager_;
    const std::string who = "vm '" + m.spec.name + "'";
    if (co_await mgr.running()) {
        m.booted = true;
        co_return;
    }
    if (!co_await mgr.exists()) {
        if (!m.spec.snapshot.empty()) {
            co_await step("create of " + who + " from snapshot " + m.spec.snapshot,
                          m.handle.manager().create_from_snapshot(m.spec.snapshot));
        } else {
            auto base = m.spec.base_image.empty() ? blank_base() : m.spec.base_image;
            co_await step("create of " + who, mgr.create(base));
        }
    }
    if (m.spec.ready_timeout.count() <= 0) {
        co_await step("start of " + who, mgr.start(m.spec.start));
        m.booted = true;
        co_return;
    }
    m.booted = true; // a failed wait leaves it running (teardown's)
    if (m.handle.qemu_) {
        // One call: a clone's clock is set while SSH comes up.
        co_await step("start and wait_ready of " + who,
                      m.handle.qemu_->start_and_wait_ready(m.spec.start, m.spec.ready_timeout));
        co_return;
    }
    co_await step("start of " + who, mgr.start(m.spec.start));
    co_await step("wait_ready of " + who, mgr.wait_ready(m.spec.ready_timeout));
}

// The set's networks exist and every address is reserved before any VM
// boots: VMs booting at once then each list all their peers.
asio::awaitable<void> vm_set::prepare_networks() {
    auto ex = co_await asio::this_coro::executor;
    for (auto& m : members_) {
        const auto& o = m->spec.options;
        const auto vm_data = qemu::make_layout(o).data;
        for (const auto& n : m->spec.start.networks) {
            qemu::virtual_network net(ex, network_options_of(n.network, o.data_dir, o.runtime_dir));
            if (!co_await net.exists()) {
                pending p("creation of network '" + n.network + "'");
                co_await net.create();
            }
            if (!n.address.empty())
                co_await net.reserve(o.name, vm_data, n.address);
        }
    }
}

void vm_set::run(std::function<asio::awaitable<void>(vm_set&)> body,
                 std::chrono::milliseconds deadline, const std::string& what) {
    if (in_run_)
        throw_error(errc::invalid_argument, "vm_set::run called from inside a run");
    if (torn_down_)
        throw_error(errc::invalid_argument, "vm_set::run after teardown");
    in_run_ = true;
    std::exception_ptr failure;
    try {
        run_coroutine(
            [&]() -> asio::awaitable<void> {
                auto ex = co_await asio::this_coro::executor;
                // The managers live in this frame: they belong to this run's
                // io_context, and a deadline destroys them with it.
                std::vector<std::unique_ptr<localvm::manager>> managers;
                struct unbind {
                    vm_set& set;
                    ~unbind() {
                        for (auto& m : set.members_) {
                            m->handle.manager_ = nullptr;
                            m->handle.qemu_ = nullptr;
                            m->handle.libvirt_ = nullptr;
                        }
                    }
                } unbind_at_exit{*this};
                co_await place_members();
                for (auto& m : members_) {
                    if (m->spec.connect.empty()) {
                        auto q = std::make_unique<qemu::manager>(ex, m->spec.options);
                        m->handle.qemu_ = q.get();
                        managers.push_back(std::move(q));
                    } else {
                        auto l = std::make_unique<libvirt::manager>(ex, libvirt_options_of(m->spec));
                        m->handle.libvirt_ = l.get();
                        managers.push_back(std::move(l));
                    }
                    m->handle.manager_ = managers.back().get();
                }
                // The shared blank base image, made once before the boots.
                auto base = blank_base();
                bool blank_needed = std::any_of(members_.begin(), members_.end(), [](auto& m) {
                    return m->spec.base_image.empty() && m->spec.snapshot.empty();
                });
                if (blank_needed && !fs::exists(base)) {
                    pending p("qemu-img create of " + base.string());
                    process::options o;
                    o.argv = {members_.front()->spec.options.qemu_img.string(), "create", "-q",
                              "-f", "qcow2", base.string() + ".part", "64M"};
                    co_await process::run_checked(o);
                    fs::rename(base.string() + ".part", base);
                }
                co_await prepare_networks();
                using op_type = decltype(asio::co_spawn(ex, boot(*members_.front()),
                                                        asio::deferred));
                std::vector<op_type> ops;
                for (auto& m : members_) {
                    bool up = m->booted;
                    if (up)
                        up = co_await m->handle.manager_->running();
                    if (!up)
                        ops.push_back(asio::co_spawn(ex, boot(*m), asio::deferred));
                }
                if (!ops.empty()) {
                    auto [order, errors] =
                        co_await asio::experimental::make_parallel_group(std::move(ops))
                            .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
                    (void)order;
                    for (auto& e : errors)
                        if (e)
                            std::rethrow_exception(e);
                }
                co_await body(*this);
            },
            deadline, what);
    } catch (...) {
        failure = std::current_exception();
    }
    in_run_ = false;

    if (!failure) {
        if (failed_check && on_failure && failed_check())
            on_failure(report());
        return;
    }
    auto text = report();
    try {
        std::rethrow_exception(failure);
    } catch (const localvm::error& e) {
        throw localvm::error(e.code(), e.diagnostic() + "\n" + text);
    } catch (const std::exception& e) {
        throw localvm::error(kit_errc::check_failed, std::string(e.what()) + "\n" + text);
    }
}

vm& vm_set::operator[](const std::string& name) {
    for (auto& m : members_)
        if (m->spec.name == name) {
            if (!m->handle.manager_)
                throw_error(errc::not_found, "test VM '" + name + "' is reachable only inside run");
            return m->handle;
        }
    throw_error(errc::not_found, "no test VM named '" + name + "'");
}

std::vector<std::string> vm_set::names() const {
    std::vector<std::string> out;
    for (const auto& m : members_)
        out.push_back(m->spec.name);
    return out;
}

std::string vm_set::report(std::size_t lines) const {
    std::string out;
    for (const auto& m : members_)
        out += tails_of(m->spec.name, qemu::make_layout(m->spec.options), lines);
    return out;
}

asio::awaitable<void> vm_set::discard(std::string name) {
    auto it = std::find_if(members_.begin(), members_.end(),
                           [&](const auto& m) { return m->spec.name == name; });
    if (it == members_.end() || !(*it)->handle.manager_)
        throw_error(errc::not_found, "vm_set::discard: no VM '" + name + "' in this run");
    const auto* target = it->get();
    co_await stop_and_remove_spec((*it)->spec);
    std::erase_if(members_, [&](const auto& m) { return m.get() == target; });
}

std::string vm_set::remove(const std::string& name) {
    if (in_run_)
        throw_error(errc::invalid_argument,
                    "vm_set::remove of vm '" + name + "' inside run (use discard there)");
    auto it = std::find_if(members_.begin(), members_.end(),
                           [&](const auto& m) { return m->spec.name == name; });
    if (it == members_.end())
        throw_error(errc::not_found, "vm_set::remove: no test VM named '" + name + "'");
    auto opts = (*it)->spec.options;
    members_.erase(it); // not booted again, whatever the removal does
    std::string problems;
    detail::remove_vm(problems, std::move(opts));
    return problems;
}

std::string vm_set::teardown() {
    if (torn_down_)
        return {};
    torn_down_ = true;
    std::string problems;
    // The set's VMs, and any other VM a test made under the set's directories.
    std::vector<qemu::options> all;
    for (auto& m : members_)
        if (m->spec.connect.empty())
            all.push_back(m->spec.options);
    // The VMs on libvirt hosts, each on its own.
    for (auto& m : members_) {
        if (m->spec.connect.empty())
            continue;
        auto lo = libvirt_options_of(m->spec);
        lo.vm.stop.quit_timeout = std::chrono::seconds(5);
        remove_or_kill(
            problems, "vm '" + lo.vm.name + "' on " + lo.uri, std::chrono::seconds(60),
            [&]() { return stop_and_remove_libvirt(lo); },
            [&]() -> asio::awaitable<std::optional<pid_t>> {
                libvirt::manager mgr(co_await asio::this_coro::executor, lo);
                co_return co_await mgr.pid();
            });
    }
    std::error_code dec;
    for (const auto& d : fs::directory_iterator(root_ / "run", dec)) {
        auto name = d.path().filename().string();
        bool known = std::any_of(all.begin(), all.end(), [&](const qemu::options& o) {
            return o.name == name && o.runtime_dir == root_ / "run";
        }) || std::any_of(members_.begin(), members_.end(), [&](const auto& m) {
            return !m->spec.connect.empty() && m->spec.name == name;
        });
        if (!known && d.is_directory() && qemu::check_name(name).empty()) {
            auto o = vm_spec::test_options();
            o.name = name;
            o.data_dir = root_ / "data";
            o.runtime_dir = root_ / "run";
            all.push_back(o);
        }
    }
    for (auto& each : all)
        detail::remove_vm(problems, each);
    // Then the networks: the set's VMs' and any other under root/data.
    std::vector<qemu::network_options> nets;
    auto add_net = [&](const std::string& name, const fs::path& data, const fs::path& run) {
        for (const auto& n : nets)
            if (n.name == name && n.data_dir == data && n.runtime_dir == run)
                return;
        nets.push_back(network_options_of(name, data, run));
    };
    for (auto& m : members_)
        for (const auto& n : m->spec.start.networks)
            add_net(n.network, m->spec.options.data_dir, m->spec.options.runtime_dir);
    for (const auto& name : qemu::list_networks(root_ / "data"))
        add_net(name, root_ / "data", root_ / "run");
    for (const auto& no : nets)
        remove_or_kill(
            problems, "network '" + no.name + "'", std::chrono::seconds(30),
            [&]() -> asio::awaitable<void> {
                qemu::virtual_network net(co_await asio::this_coro::executor, no);
                co_await net.remove();
            },
            [&]() -> asio::awaitable<std::optional<pid_t>> {
                qemu::virtual_network net(co_await asio::this_coro::executor, no);
                co_return (co_await net.query()).switch_pid;
            });
    std::error_code ec;
    fs::remove_all(root_, ec);
    if (ec)
        problems += "cannot remove " + root_.string() + ": " + ec.message() + "\n";
    return problems;
}

} // namespace localvm::testing
