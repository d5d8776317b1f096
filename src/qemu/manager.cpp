#include "agent_calls.hpp"
#include "detail/backoff.hpp"
#include "detail/race.hpp"
#include "firmware.hpp"
#include "image.hpp"
#include "instance_id.hpp"
#include "lock.hpp"
#include "stop_machine.hpp"
#include "watch.hpp"

#include <localvm/atomic_file.hpp>
#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/console/drain.hpp>
#include <localvm/console/log.hpp>
#include <localvm/console/serial.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qemu/accel.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/ssh/command.hpp>
#include <localvm/ssh/keygen.hpp>
#include <localvm/ssh/probe.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <signal.h>
#include <sys/stat.h>

namespace localvm::qemu {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using detail::lock_owner;
using std::chrono::milliseconds;

namespace {

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The start options checked and turned into command-line terms, before
// anything is spawned or written.
struct checked_start {
    std::uint64_t memory_mib = 0;
    std::optional<direct_boot> boot;
    std::optional<firmware> uefi;
    fs::path vars_template; ///< with uefi: what the VM's variable store starts as
};

checked_start check_start_options(const start_options& so, arch a) {
    checked_start c;
    if (so.cpus < 1 || so.cpus > 255)
        throw_error(errc::invalid_argument,
                    "cpus: " + std::to_string(so.cpus) + " is outside 1..255");
    boost::system::error_code ec;
    auto mib = parse_memory_mib(so.memory, ec);
    if (!mib)
        throw_error(errc::invalid_argument,
                    "memory: \"" + so.memory +
                        "\" is not a size like 512M or 4G (at least 16M, whole MiB)");
    c.memory_mib = *mib;
    std::set<std::pair<std::string, std::uint16_t>> bound;
    for (const auto& p : so.ports) {
        in_addr addr{};
        if (::inet_pton(AF_INET, p.host_address.c_str(), &addr) != 1)
            throw_error(errc::invalid_argument,
                        "port forward: host address \"" + p.host_address +
                            "\" is not an IPv4 address");
        if (p.guest_port == 0)
            throw_error(errc::invalid_argument, "port forward: guest port 0");
        if (p.host_port != 0 && !bound.insert({p.host_address, p.host_port}).second)
            throw_error(errc::invalid_argument, "port forward: host port " +
                                                    std::to_string(p.host_port) +
                                                    " is forwarded twice");
    }
    if (so.boot) {
        direct_boot b = *so.boot;
        if (!fs::is_regular_file(b.kernel))
            throw_error(errc::not_found, "kernel " + b.kernel.string() + " does not exist");
        if (!b.initrd.empty() && !fs::is_regular_file(b.initrd))
            throw_error(errc::not_found, "initrd " + b.initrd.string() + " does not exist");
        b.kernel = fs::absolute(b.kernel);
        if (!b.initrd.empty())
            b.initrd = fs::absolute(b.initrd);
        b.cmdline = normalize_kernel_cmdline(b.cmdline, a);
        c.boot = std::move(b);
    } else {
        std::string package;
        auto found = detail::find_firmware(a, package, [](const fs::path& p) {
            std::error_code ec;
            return fs::is_regular_file(p, ec);
        });
        if (!found)
            throw_error(errc::unsupported, "firmware boot needs UEFI firmware; install the " +
                                               package + " package (or use direct boot)");
        c.uefi = firmware{found->code, {}};
        c.vars_template = found->vars_template;
    }
    return c;
}

// The VM's own UEFI variable store, copied whole or not at all: a store cut
// short (a full disk) would make every later start fail.
void copy_vars_template(const fs::path& from, const fs::path& to) {
    std::ifstream in(from, std::ios::binary);
    if (!in)
        throw_error(errc::io_error, "cannot read UEFI variable store template " + from.string());
    write_file_atomic(
        to,
        [&](const byte_writer& write) {
            std::string buf(1 << 16, '\0');
            while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
                write(std::string_view(buf.data(), static_cast<std::size_t>(in.gcount())));
            if (in.bad())
                throw_error(errc::io_error,
                            "cannot read UEFI variable store template " + from.string());
        },
        fs::perms(0600));
}

// A new pinned host key gives a new id, so that cloud-init applies it.
std::string instance_id(const std::string& name, const start_options& so,
                        const std::string& host_key = {}) {
    return detail::instance_id(name, so.user_data,
                               host_key.empty() ? so.ssh_authorized_key
                                                : so.ssh_authorized_key + '\n' + host_key);
}

std::string read_key_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in || ss.str().empty())
        throw_error(errc::io_error, "cannot read the SSH host key " + p.string());
    return ss.str();
}

fs::path default_qemu_binary(arch a) {
    return a == arch::arm64 ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

// For stop's closing line (not the word "quit" unless quit ended it: the
// tests read the log for it).
std::string_view stop_step_words(stop_step step) {
    switch (step) {
    case stop_step::powerdown: return "the ACPI power button";
    case stop_step::agent: return "the guest agent (guest-shutdown)";
    case stop_step::quit: return "QMP quit";
    case stop_step::sigterm: return "SIGTERM";
    case stop_step::sigkill: return "SIGKILL";
    case stop_step::none: break;
    }
    return "itself (QEMU ended before stop acted)";
}

// Ends a QEMU that `start` spawned and did not commit, and waits (at most
// 5 s, on the io_context) until it is gone. Its supervisor SIGKILLs it once the commit channel closes; the
// direct SIGKILL covers a supervisor that is gone itself.
asio::awaitable<void> end_uncommitted(process::detached_process& proc) {
    std::optional<process::pidfd> fd;
    try {
        fd.emplace(process::pidfd::open(proc.pid()));
    } catch (const localvm::error&) {
    }
    proc.abandon();
    if (!fd)
        co_return;
    fd->send_signal(SIGKILL);
    co_await fd->wait_exit(milliseconds(5000));
}

// Serialises lifecycle calls on one VM across processes.
asio::awaitable<detail::vm_lock> lock_vm(const layout& l, const options& o) {
    co_return co_await detail::vm_lock::acquire(l.lock, l.runtime / "lock.sock", o.lock_timeout,
                                                "VM " + o.name, [&l] { make_directories(l); });
}

} // namespace

manager::manager(asio::any_io_executor executor, options opts)
    : executor_(std::move(executor))
    , opts_(std::move(opts))
    , layout_(make_layout(opts_)) {
    if (opts_.qemu_binary.empty())
        opts_.qemu_binary = default_qemu_binary(opts_.architecture);
}

std::string manager::addr() const { return "10.0.2.2"; }

void manager::set_output(line_sink sink) { output_ = std::move(sink); }

void manager::set_stage_sink(stage_sink sink) { stages_ = std::move(sink); }

void manager::say(const std::string& line) const {
    if (output_)
        output_("[" + opts_.name + "] " + line);
}

// QEMU's stderr goes to qemu.log; what it wrote since the last call goes to
// the output sink too.
void manager::forward_qemu_log() const {
    if (!output_)
        return;
    std::ifstream in(layout_.qemu_log, std::ios::binary);
    if (!in)
        return;
    in.seekg(0, std::ios::end);
    auto size = static_cast<std::uint64_t>(in.tellg());
    if (size <= qemu_log_forwarded_) {
        qemu_log_forwarded_ = size;
        return;
    }
    in.seekg(static_cast<std::streamoff>(qemu_log_forwarded_));
    std::string line;
    while (std::getline(in, line))
        output_("[" + opts_.name + "] qemu: " + line);
    qemu_log_forwarded_ = size;
}

// Both directories are the caller's own, 0700, or nothing goes on.
void manager::ensure_dirs() const { make_directories(layout_); }

std::optional<vm_state> manager::read_state() const {
    std::ifstream in(layout_.state, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    return parse_state(ss.str(), ec);
}

void manager::write_state(const vm_state& s) const {
    write_file_atomic(layout_.state, render_state(s), fs::perms(0600));
}

std::string manager::qemu_log_tail(std::size_t lines) const {
    return console::read_tail(layout_.qemu_log, lines);
}

// The console's last lines, led by the line that says the guest kernel
// panicked when there is one (a panic's stack dump pushes it out of a short tail).
std::string manager::console_diagnosis() const {
    std::string panic;
    std::istringstream in(console_tail(400));
    for (std::string line; std::getline(in, line);)
        if (panic.empty() && (line.find("Kernel panic") != std::string::npos ||
                              line.find("sysrq: Trigger a crash") != std::string::npos))
            panic = line;
    return (panic.empty() ? std::string() : "; the guest kernel panicked: " + panic) +
           "; serial console:\n" + console_tail(30);
}

std::string manager::console_tail(std::size_t lines) const {
    return console::read_tail(layout_.console_log, lines);
}

// Brings the recorded state up to date when QEMU has ended since it was
// written: how it ended comes from the supervisor's exit-status file and,
// for a clean exit nobody asked for, from QEMU's own log.
std::optional<vm_state> manager::settle_state(bool persist) const {
    auto s = read_state();
    if (!s || s->ended_at != 0 || s->pid == 0)
        return s;
    if (lock_owner(layout_.pidfile))
        return s;
    auto how = process::read_exit_status(layout_.exit_status);
    if (how) {
        s->last_end = classify_end(how->how, how->number, s->stopping);
        s->last_end_detail = how->how + " " + std::to_string(how->number);
        if (how->abandoned)
            s->last_end_detail += " (its starter ended before the start completed)";
        if (s->last_end == end_reason::guest_shutdown &&
            qemu_log_tail(5).find("terminating on signal") != std::string::npos) {
            s->last_end = end_reason::killed;
            s->last_end_detail += " (terminated by a signal)";
        }
    } else {
        s->last_end = s->stopping ? end_reason::stopped : end_reason::crashed;
        s->last_end_detail = "QEMU is gone; no exit status was recorded";
    }
    s->ended_at = unix_now();
    s->stopping = false;
    if (persist)
        write_state(*s);
    return s;
}

void manager::clean_runtime(bool keep_logs) const {
    std::error_code ec;
    for (const auto* p : {&layout_.qmp_socket, &layout_.console_socket, &layout_.monitor_socket,
                          &layout_.agent_socket, &layout_.pidfile, &layout_.exit_status})
        fs::remove(*p, ec);
    // Extra QMP sockets, however many the QEMU that made them had.
    std::vector<fs::path> extra;
    for (fs::directory_iterator it(layout_.runtime, ec), end; !ec && it != end; it.increment(ec)) {
        auto n = it->path().filename().string();
        if (n.starts_with("qmp-") && n.ends_with(".sock"))
            extra.push_back(it->path());
    }
    for (const auto& x : extra)
        fs::remove(x, ec);
    if (!keep_logs) {
        fs::remove(layout_.console_log, ec);
        fs::remove(layout_.qemu_log, ec);
        fs::remove(layout_.known_hosts, ec);
        qemu_log_forwarded_ = 0;
    }
}

asio::awaitable<void> manager::create(fs::path base_image) {
    // qemu-img gets the size as a plain byte count, never the caller's text.
    std::string disk_bytes;
    if (!opts_.disk_size.empty()) {
        boost::system::error_code sec;
        auto bytes = parse_disk_size(opts_.disk_size, sec);
        if (!bytes)
            throw_error(errc::invalid_argument,
                        "disk_size: \"" + opts_.disk_size +
                            "\" is not a size like 20G, 512M or a number of bytes");
        disk_bytes = std::to_string(*bytes);
    }
    if (!fs::exists(base_image))
        throw_error(errc::not_found, "base image " + base_image.string() + " does not exist");
    base_image = fs::absolute(base_image);
    ensure_dirs();
    auto lock = co_await lock_vm(layout_, opts_);
    if (fs::exists(layout_.disk))
        throw_error(errc::already_exists,
                    "VM " + opts_.name + " already exists (" + layout_.disk.string() + ")");

    // The base may be hostile: qemu-img reads it under limits, and one that
    // makes QEMU open other host files is refused.
    process::options info;
    info.argv = detail::limited_info_argv(opts_.qemu_img, base_image);
    info.timeout = std::chrono::seconds(60);
    auto r = co_await process::run_checked(info);
    auto parsed = detail::parse_image_info(r.out);
    if (!parsed)
        throw_error(errc::process_failed, "qemu-img info " + base_image.string() +
                                              " gave no image format");
    if (auto why = detail::refuse_base(*parsed, base_image, opts_.allow_base_backing_chain);
        !why.empty())
        throw_error(errc::unsupported, why);
    const std::string& format = parsed->format;

    auto tmp = layout_.disk;
    tmp += ".tmp-create";
    std::error_code ec;
    fs::remove(tmp, ec);
    process::options mk;
    mk.argv = {opts_.qemu_img.string(), "create", "-q", "-f", "qcow2", "-F", format,
               "-b", base_image.string(), tmp.string()};
    if (!disk_bytes.empty())
        mk.argv.push_back(disk_bytes);
    say("creating " + layout_.disk.string() + " on " + base_image.string() + " (" + format + ")");
    try {
        co_await process::run_checked(mk);
        fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write); // the guest's disk
        fs::rename(tmp, layout_.disk);
    } catch (...) {
        fs::remove(tmp, ec);
        throw;
    }
}

asio::awaitable<bool> manager::exists() { co_return fs::exists(layout_.disk); }

asio::awaitable<bool> manager::running() { co_return lock_owner(layout_.pidfile).has_value(); }

asio::awaitable<std::optional<pid_t>> manager::pid() { co_return lock_owner(layout_.pidfile); }

asio::awaitable<status> manager::query() {
    status st;
    st.exists = fs::exists(layout_.disk);
    st.pid = lock_owner(layout_.pidfile);
    st.running = st.pid.has_value();
    if (!st.running && !fs::exists(layout_.exit_status)) {
        // QEMU just ended: its supervisor writes the exit status right after.
        // Not when the state says the end is settled already (stop removed
        // the status file it read): nothing more will come.
        auto recorded = read_state();
        if (recorded && recorded->ended_at == 0 && recorded->pid != 0)
            co_await detail::wait_for_path(layout_.exit_status, milliseconds(1000));
    }
    st.state = settle_state(false);
    // As attach_monitor judges it: QEMU keeps the socket while it lives.
    st.monitor = st.running && fs::exists(layout_.monitor_socket);
    co_return st;
}

asio::awaitable<std::vector<port_forward>> manager::ports() {
    auto s = read_state();
    if (!lock_owner(layout_.pidfile) || !s)
        throw_error(errc::not_running, "VM " + opts_.name + " is not running");
    co_return s->ports;
}

asio::awaitable<void> manager::start(start_options so) {
    auto checked = check_start_options(so, opts_.architecture);
    cloudinit::seed seed;
    seed.user_data = so.user_data;
    seed.meta.instance_id = instance_id(opts_.name, so);
    seed.meta.local_hostname = opts_.name;
    if (!so.ssh_authorized_key.empty())
        seed.meta.public_keys.push_back(so.ssh_authorized_key);
    cloudinit::seed_files(seed); // validates meta-data before anything is touched
    // A VM that was never created gets no directories either (checked again
    // under the lock, in case a `delete` runs meanwhile).
    auto require_disk = [this] {
        if (!fs::exists(layout_.disk))
            throw_error(errc::not_found, "VM " + opts_.name + " was not created (no disk at " +
                                             layout_.disk.string() + ")");
    };
    require_disk();

    ensure_dirs();
    auto lock = co_await lock_vm(layout_, opts_);
    if (auto owner = lock_owner(layout_.pidfile))
        throw_error(errc::already_running, "VM " + opts_.name + " is already running (pid " +
                                               std::to_string(*owner) + ")");
    require_disk();
    auto previous = settle_state(true);

    launch_plan plan;
    plan.name = opts_.name;
    plan.architecture = opts_.architecture;
    plan.qemu_binary = opts_.qemu_binary;
    plan.cpus = so.cpus;
    plan.memory_mib = checked.memory_mib;
    plan.disk = layout_.disk;
    plan.seed = layout_.seed;
    plan.boot = checked.boot;
    plan.net = opts_.net;
    plan.ports = so.ports;
    plan.qmp_socket = layout_.qmp_socket;
    plan.extra_qmp_sockets = layout_.extra_qmp_sockets;
    plan.console_socket = layout_.console_socket;
    plan.agent_socket = layout_.agent_socket;
    // QEMU logs the console into a FIFO; a drainer keeps console.log bounded.
    plan.console_log = console::drain_fifo(layout_.console_log);
    plan.pidfile = layout_.pidfile;
    // QEMU runs detached, so its stdio is no terminal: the human monitor
    // goes on a socket that attach_monitor (from any process) connects to.
    plan.monitor = so.monitor ? monitor_mode::socket : monitor_mode::none;
    plan.monitor_socket = layout_.monitor_socket;
    if (checked.uefi) {
        plan.uefi = firmware{checked.uefi->code, layout_.efi_vars};
        std::error_code ec;
        auto type = fs::symlink_status(layout_.efi_vars, ec).type();
        if (type == fs::file_type::not_found)
            copy_vars_template(checked.vars_template, layout_.efi_vars);
        else if (type != fs::file_type::regular) // QEMU would write through a link
            throw_error(errc::unsupported, "UEFI variable store " + layout_.efi_vars.string() +
                                               " is not a regular file; refusing to use it");
    }

    // The guest's host key: made on the first start, handed over in the seed.
    if (opts_.host_key == host_key_policy::pinned) {
        cloudinit::ssh_host_key key;
        key.public_key =
            co_await ssh::ensure_key_pair(layout_.host_key, "localvm-host-" + opts_.name);
        key.private_key = read_key_file(layout_.host_key);
        seed.vendor_data = cloudinit::render_host_key_vendor_data(key);
        seed.meta.instance_id = instance_id(opts_.name, so, key.public_key);
    }

    clean_runtime(false);
    cloudinit::write_seed_file(layout_.seed, seed);

    auto choice = resolve_accelerator(opts_.accel, opts_.architecture,
                                      layout_.runtime.parent_path() / "kvm-hangs");
    plan.accel = choice.accel;
    for (;;) {
        auto argv = command_line(plan);
        say("starting " + plan.qemu_binary.string() + " (" + choice.reason + ")");
        auto drainer = console::log_drainer::start(layout_.console_log);
        process::detached_options d;
        d.argv = argv;
        d.stdout_file = layout_.qemu_log;
        d.stderr_file = layout_.qemu_log;
        d.exit_status_file = layout_.exit_status;
        // Until commit(), QEMU dies with this process (or this object): a
        // starter killed mid-start leaves no paused QEMU behind.
        auto proc = co_await process::launch_detached(d); // not blocking the thread
        const pid_t pid = proc.pid();
        std::exception_ptr failure;
        bool up = false;
        try {
            if (stages_)
                stages_(boot_stage::qemu_spawned, "pid " + std::to_string(pid));
            up = co_await bring_up(pid, plan, choice.watch_boot, unix_now());
        } catch (...) {
            failure = std::current_exception();
        }
        if (up) {
            // The drainer first: a starter dying between the two leaves an
            // uncommitted QEMU, which its supervisor kills, ending the drainer.
            drainer.release();
            // false only if QEMU died this instant: as if right after start
            co_await proc.hand_over();
            forward_qemu_log();
            say("running, pid " + std::to_string(pid));
            co_return;
        }
        // Nothing half-done: the QEMU we spawned goes, with its sockets. The
        // cleanup must run to its end, also when this start was cancelled:
        // asio would throw at the next co_await of a cancelled coroutine.
        co_await asio::this_coro::reset_cancellation_state();
        co_await end_uncommitted(proc);
        co_await drainer.finish(milliseconds(2000));
        // Its supervisor records the end right after; let it, before cleaning up.
        co_await detail::wait_for_path(layout_.exit_status, milliseconds(2000));
        const std::string qemu_said = qemu_log_tail(40);
        forward_qemu_log();
        clean_runtime(true);
        std::error_code ec;
        fs::remove(layout_.state, ec);
        if (previous)
            write_state(*previous);
        // KVM chosen automatically falls back to TCG (for good, through the
        // marker) only when KVM is to blame: a silent boot (the watchdog) or
        // QEMU's own words naming KVM. Anything else is this start's error.
        std::string why;
        if (failure) {
            try {
                std::rethrow_exception(failure);
            } catch (const localvm::error& e) {
                if (!choice.watch_boot || e.code() == boost::asio::error::operation_aborted ||
                    !names_kvm_failure(qemu_said))
                    throw;
                why = e.what();
            }
        } else {
            why = "no console output within " + std::to_string(opts_.kvm_watchdog.count()) +
                  " ms: KVM hangs here";
        }
        say("KVM did not work (" + why.substr(0, why.find('\n')) + "); restarting with tcg");
        write_file_atomic(layout_.runtime.parent_path() / "kvm-hangs",
                          "localvm's automatic accelerator uses tcg on this host: KVM failed:\n" +
                              why + "\n");
        plan.accel = accelerator::tcg;
        choice = {accelerator::tcg, "tcg after KVM failed", false};
        clean_runtime(false);
    }
}

asio::awaitable<bool> manager::bring_up(pid_t pid, const launch_plan& plan, bool watch_boot,
                                        std::int64_t started_at) {
    auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
    auto remaining = [&] {
        return std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(
                                             deadline - std::chrono::steady_clock::now()));
    };
    auto exited = [&](const std::string& during) -> std::string {
        std::string how = "exited";
        if (auto st = process::read_exit_status(layout_.exit_status))
            how = st->how + " " + std::to_string(st->number);
        auto tail = qemu_log_tail(20);
        return plan.qemu_binary.string() + " " + how + " " + during +
               (tail.empty() ? std::string() : ":\n" + tail);
    };

    // The first to finish decides, also when it throws: a failing watch must
    // not wait for QEMU to exit (or for the rest of start_timeout).
    auto appeared =
        co_await localvm::detail::race(detail::wait_for_path(layout_.qmp_socket, remaining()),
                                       process::wait_exit(pid, remaining()));
    if (appeared.index() == 1 && std::get<1>(appeared)) {
        co_await detail::wait_for_path(layout_.exit_status, milliseconds(2000));
        throw_error(errc::process_failed, exited("during start"));
    }
    if (appeared.index() == 0 && !std::get<0>(appeared))
        throw_error(errc::timeout, "waiting " + std::to_string(opts_.start_timeout.count()) +
                                       " ms for QEMU's monitor socket " +
                                       layout_.qmp_socket.string());

    // QEMU creates the socket file a moment before it listens on it: a
    // refused connection in that window is retried briefly.
    std::optional<qmp::client> connected;
    for (localvm::detail::backoff pause(milliseconds(1), milliseconds(50));;) {
        qmp::client_options co;
        co.connect_timeout = remaining();
        try {
            connected.emplace(co_await qmp::client::connect(layout_.qmp_socket.string(), co));
            break;
        } catch (const localvm::error& e) {
            if (e.code() != errc::monitor_closed || std::chrono::steady_clock::now() >= deadline)
                throw;
        }
        if (!process::alive(pid)) {
            co_await detail::wait_for_path(layout_.exit_status, milliseconds(2000));
            throw_error(errc::process_failed, exited("during start"));
        }
        asio::steady_timer t(co_await asio::this_coro::executor, pause.next());
        co_await t.async_wait(asio::use_awaitable);
    }
    auto& client = *connected;
    if (stages_)
        stages_(boot_stage::qmp_ready, {});
    vm_state s;
    s.pid = pid;
    s.accel = plan.accel;
    s.started_at = started_at;
    s.ports = plan.ports;
    // Every command gets what is left of start_timeout: a QEMU that stalls
    // after its greeting must not hold start (and the VM lock) for ever.
    auto within_start = [&] {
        qmp::execute_options eo;
        eo.timeout = remaining();
        return eo;
    };
    if (!plan.ports.empty()) {
        boost::json::object args;
        args["command-line"] = "info usernet";
        auto v = co_await client.execute("human-monitor-command", std::move(args), within_start());
        if (!v.is_string())
            throw_error(errc::protocol_error, "QEMU's info usernet gave no text");
        std::string text(v.get_string());
        auto bound = parse_usernet_ports(text, plan.ports);
        if (!bound)
            throw_error(errc::protocol_error, "QEMU's info usernet lacks a forward:\n" + text);
        for (std::size_t i = 0; i < bound->size(); ++i)
            s.ports[i].host_port = (*bound)[i];
    }
    write_state(s);
    co_await client.execute("cont", {}, within_start());
    auto status = co_await client.execute("query-status", {}, within_start());
    const auto* running = status.is_object() ? status.get_object().if_contains("running") : nullptr;
    if (!running || !running->is_bool() || !running->get_bool()) {
        const auto* word = status.is_object() ? status.get_object().if_contains("status") : nullptr;
        throw_error(errc::process_failed,
                    "QEMU did not run after cont (status " +
                        (word && word->is_string() ? std::string(word->get_string()) : "?") + ")");
    }
    if (stages_)
        stages_(boot_stage::guest_running, plan.accel == accelerator::kvm ? "kvm" : "tcg");
    client.close();

    if (watch_boot) {
        auto abort = [pid]() -> asio::awaitable<void> {
            co_await process::wait_exit(pid, milliseconds(std::chrono::hours(24)));
        };
        console::wait_options wo;
        wo.start_offset = 0;
        try {
            co_await console::wait_for_console(layout_.console_log,
                                               console::text_matcher(std::string()), // any output
                                               opts_.kvm_watchdog, abort, wo);
        } catch (const localvm::error& e) {
            if (e.code() == errc::timeout)
                co_return false; // silent: KVM hangs
            if (e.code() == errc::guest_died)
                throw_error(errc::process_failed, exited("while booting"));
            throw;
        }
    }
    co_return true;
}

asio::awaitable<void> manager::wait_ready(milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto t = ssh_target();
    pid_t pid = running_pid();
    auto abort = [this, pid]() -> asio::awaitable<std::string> {
        co_await process::wait_exit(pid, milliseconds(std::chrono::hours(24)));
        co_await console::wait_drained(layout_.console_log, milliseconds(2000));
        co_return "QEMU (pid " + std::to_string(pid) + ") exited while waiting for SSH" +
            console_diagnosis();
    };
    ssh::probe_options po;
    po.timeout = timeout;
    auto banner = co_await ssh::wait_for_banner(t.host, t.port, po, abort);
    say("ssh answers: " + banner);
    if (stages_)
        stages_(boot_stage::ssh_banner, banner);
    if (opts_.ssh_identity_file.empty())
        co_return;
    ssh::login_options lo;
    lo.timeout = std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(
                                               deadline - std::chrono::steady_clock::now()));
    co_await ssh::wait_for_login(t, lo, abort);
    say("ssh login works");
    if (stages_)
        stages_(boot_stage::ssh_login, opts_.ssh_user);
}

pid_t manager::running_pid() const {
    auto owner = lock_owner(layout_.pidfile);
    if (!owner)
        throw_error(errc::not_running, "VM " + opts_.name + " is not running");
    return *owner;
}

ssh::target manager::ssh_target() const {
    auto s = read_state();
    if (!lock_owner(layout_.pidfile) || !s)
        throw_error(errc::not_running, "VM " + opts_.name + " is not running");
    const port_forward* fwd = nullptr;
    for (const auto& p : s->ports)
        if (p.guest_port == 22)
            fwd = &p;
    if (!fwd)
        throw_error(errc::invalid_argument,
                    "VM " + opts_.name + " has no port forward to guest port 22");
    ssh::target t;
    t.host = fwd->host_address == "0.0.0.0" ? "127.0.0.1" : fwd->host_address;
    t.port = fwd->host_port;
    t.user = opts_.ssh_user;
    t.identity_file = opts_.ssh_identity_file;
    t.known_hosts_file = layout_.known_hosts;
    if (opts_.host_key == host_key_policy::pinned) {
        auto pub = layout_.host_key;
        pub += ".pub";
        if (!fs::exists(pub))
            throw_error(errc::not_found,
                        "VM " + opts_.name + " has no pinned SSH host key (" + pub.string() +
                            "): it was started without one; start it again, or use "
                            "host_key_policy::trust_on_first_use");
        auto line = read_key_file(pub);
        line.erase(line.find_last_not_of("\r\n") + 1);
        t.known_host_keys = {line};
    }
    return t;
}

asio::awaitable<shell_result> manager::shell(std::string command, shell_options opts) {
    auto t = ssh_target();
    ssh::shell_options so;
    so.timeout = opts.timeout;
    so.stdout_sink = std::move(opts.out);
    so.stderr_sink = std::move(opts.err);
    so.input_fd = opts.input_fd;
    so.output_fd = opts.output_fd;
    so.error_fd = opts.error_fd;
    auto r = co_await ssh::shell(std::move(t), std::move(command), std::move(so));
    co_return shell_result{r.exit_status, std::move(r.output)};
}

asio::awaitable<void> manager::sync(fs::path from, std::string to, sync_options opts) {
    auto t = ssh_target();
    ssh::sync_options so;
    so.chown = std::move(opts.chown);
    so.excludes = std::move(opts.excludes);
    so.output = output_;
    co_await ssh::sync(std::move(t), from.string(), std::move(to), std::move(so));
}

asio::awaitable<void> manager::console() {
    console::attach_options ao;
    ao.hint = console::attach_hint(opts_.name);
    co_await attach_console(std::move(ao));
}

asio::awaitable<console::attach_end> manager::attach_console(console::attach_options opts) {
    running_pid();
    co_return co_await console::attach(layout_.console_socket, std::move(opts));
}

asio::awaitable<console::attach_end> manager::attach_monitor(console::attach_options opts) {
    running_pid();
    // QEMU makes the socket before it runs the guest and keeps it while it
    // lives: no socket on a running VM means it was started without one.
    if (!fs::exists(layout_.monitor_socket))
        throw_error(errc::unsupported,
                    "VM " + opts_.name +
                        " was started without a human monitor; start it with "
                        "start_options::monitor = true to use attach_monitor");
    opts.endpoint = "QEMU monitor";
    co_return co_await console::attach(layout_.monitor_socket, std::move(opts));
}

asio::awaitable<std::string> manager::wait_for_console(std::string text, milliseconds timeout) {
    pid_t pid = running_pid();
    auto abort = [pid]() -> asio::awaitable<void> {
        co_await process::wait_exit(pid, milliseconds(std::chrono::hours(24)));
    };
    co_return co_await console::wait_for_console(layout_.console_log,
                                                 console::text_matcher(std::move(text)), timeout,
                                                 abort);
}

asio::awaitable<void> manager::stop() {
    // No runtime directory, no pid file: nothing runs (and nothing is made).
    if (!fs::exists(layout_.runtime))
        throw_error(errc::not_running, "VM " + opts_.name + " is not running");
    ensure_dirs();
    auto lock = co_await lock_vm(layout_, opts_);
    auto owner = lock_owner(layout_.pidfile);
    if (!owner) {
        settle_state(true);
        throw_error(errc::not_running, "VM " + opts_.name + " is not running");
    }
    pid_t pid = *owner;
    // Best effort: a full (ENOSPC) or read-only runtime filesystem must not
    // keep the VM from powering off. The failure is said, not thrown.
    auto best_effort = [this](const char* what, auto&& write) {
        try {
            write();
        } catch (const std::exception& e) {
            say(std::string("cannot record ") + what + " (" + e.what() + "); stopping anyway");
        }
    };
    auto s = read_state().value_or(vm_state{});
    s.pid = pid;
    s.stopping = true;
    best_effort("the stop", [&] { write_state(s); });

    // One pidfd from here on: every signal and wait reaches this QEMU, never
    // a process that got its pid later.
    auto proc = process::pidfd::open(pid);
    detail::stop_machine machine(pid, opts_.stop);
    std::optional<qmp::client> client;
    std::string failure; // the event text must outlive the resume call
    detail::stop_event ev{detail::stop_event_kind::start, {}};
    for (;;) {
        auto a = machine.resume(ev, std::chrono::steady_clock::now());
        if (!a.message.empty())
            say(a.message);
        auto timeout = std::chrono::duration_cast<milliseconds>(a.timeout);
        using k = detail::stop_action_kind;
        ev = {detail::stop_event_kind::waited, {}};
        switch (a.kind) {
        case k::connect:
            try {
                qmp::client_options co;
                co.connect_timeout = a.timeout;
                client.emplace(co_await qmp::client::connect(layout_.qmp_socket.string(), co));
                ev.kind = detail::stop_event_kind::connected;
            } catch (const localvm::error& e) {
                failure = e.what();
                ev = {detail::stop_event_kind::connect_failed, failure};
            }
            break;
        case k::powerdown:
        case k::quit:
            try {
                qmp::execute_options eo;
                eo.timeout = a.timeout;
                const bool quit = a.kind == k::quit;
                try {
                    co_await client->execute(quit ? "quit" : "system_powerdown", {}, eo);
                } catch (const localvm::error& e) {
                    // QEMU may close the socket before its reply to quit reaches us.
                    if (!quit || e.code() != errc::monitor_closed ||
                        client->end() != qmp::connection_end::clean)
                        throw;
                }
                ev.kind = detail::stop_event_kind::replied;
            } catch (const localvm::error& e) {
                failure = e.what();
                ev = {detail::stop_event_kind::command_failed, failure};
            }
            break;
        case k::agent_shutdown:
            try {
                co_await detail::agent_shutdown(layout_.agent_socket.string(), timeout);
                ev.kind = detail::stop_event_kind::replied;
            } catch (const localvm::error& e) {
                failure = e.what();
                ev = {detail::stop_event_kind::command_failed, failure};
            }
            break;
        case k::signal:
            if (!proc.send_signal(a.signal) && !proc.exited())
                say(std::string("cannot signal QEMU: ") + std::strerror(errno));
            [[fallthrough]];
        case k::wait:
            if (co_await proc.wait_exit(timeout))
                ev.kind = detail::stop_event_kind::exited;
            break;
        case k::done:
        case k::fail:
            break;
        }
        if (a.kind == k::done)
            break;
        if (a.kind == k::fail)
            throw_error(errc::process_failed, machine.diagnostic());
        // A failed connect or command may just mean QEMU is gone already.
        if ((ev.kind == detail::stop_event_kind::connect_failed ||
             ev.kind == detail::stop_event_kind::command_failed) &&
            proc.exited())
            ev = {detail::stop_event_kind::exited, {}};
    }
    client.reset();
    const auto took = std::chrono::duration_cast<milliseconds>(
        machine.elapsed(std::chrono::steady_clock::now()));
    co_await detail::wait_for_path(layout_.exit_status, milliseconds(2000));
    best_effort("how QEMU ended", [&] {
        if (auto settled = settle_state(false)) {
            settled->stopped_by = machine.ended_by();
            write_state(*settled);
        }
    });
    forward_qemu_log();
    clean_runtime(true);
    say("stopped by " + std::string(stop_step_words(machine.ended_by())) + " after " +
        std::to_string(took.count()) + " ms");
}

asio::awaitable<void> manager::remove() {
    // Whatever is there, a link too, is checked (and refused) by ensure_dirs.
    auto present = [](const fs::path& p) {
        std::error_code ec;
        return fs::symlink_status(p, ec).type() != fs::file_type::not_found;
    };
    if (!present(layout_.runtime) && !present(layout_.data))
        co_return;
    ensure_dirs();
    auto lock = co_await lock_vm(layout_, opts_);
    if (auto owner = lock_owner(layout_.pidfile))
        throw_error(errc::already_running, "VM " + opts_.name + " is running (pid " +
                                               std::to_string(*owner) + "); stop it first");
    // The pid file is gone with a wiped runtime directory (logind removes
    // /run/user/<uid> at logout); QEMU's lock on the disk is not.
    if (detail::image_in_use(layout_.disk))
        throw_error(errc::already_running,
                    "VM " + opts_.name + " is running: a QEMU holds its disk " +
                        layout_.disk.string() + " open (its runtime directory " +
                        layout_.runtime.string() + " was removed); stop that QEMU first");
    std::error_code ec;
    fs::remove_all(layout_.data, ec);
    if (ec)
        throw_error(errc::io_error, "cannot remove " + layout_.data.string() + ": " + ec.message());
    fs::remove_all(layout_.runtime, ec);
    if (ec)
        throw_error(errc::io_error,
                    "cannot remove " + layout_.runtime.string() + ": " + ec.message());
    say("removed");
}

} // namespace localvm::qemu
