// The VM's files: messages, the state file, logs and their tails, the
// runtime directory's clean-up, the UEFI variable store, the host key.
#include <localvm/atomic_file.hpp>
#include <localvm/console/log.hpp>
#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>

#include <chrono>
#include <fstream>

#include "guest_ssh.hpp"
#include "manager_impl.hpp"
#include "sys/file.hpp"
#include "watch.hpp"

namespace localvm::qemu {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using detail::lock_owner;

namespace {

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

} // namespace

std::int64_t detail::unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void manager::impl::say(const std::string& line) const {
    if (output)
        output("[" + opts.name + "] " + line);
}

void manager::impl::stage(boot_stage s, const std::string& detail) const {
    if (stages)
        stages(s, detail);
}

void manager::impl::forward_qemu_log() {
    if (!output)
        return;
    std::ifstream in(files.qemu_log, std::ios::binary);
    if (!in)
        return;
    in.seekg(0, std::ios::end);
    auto size = static_cast<std::uint64_t>(in.tellg());
    if (size <= qemu_log_forwarded) {
        qemu_log_forwarded = size;
        return;
    }
    in.seekg(static_cast<std::streamoff>(qemu_log_forwarded));
    std::string line;
    while (std::getline(in, line))
        output("[" + opts.name + "] qemu: " + line);
    qemu_log_forwarded = size;
}

// Both directories are the caller's own, 0700, or nothing goes on.
void manager::impl::ensure_dirs() const {
    make_directories(files);
}

// Serialises lifecycle calls on one VM across processes.
asio::awaitable<detail::vm_lock> manager::impl::lock() {
    const layout& l = files;
    co_return co_await detail::vm_lock::acquire(l.lock, l.runtime / "lock.sock", opts.lock_timeout,
                                                "VM " + opts.name, [&l] { make_directories(l); });
}

pid_t manager::impl::running_pid() const {
    auto owner = lock_owner(files.pidfile);
    if (!owner)
        throw_error(errc::not_running, "VM " + opts.name + " is not running");
    return *owner;
}

vm_state manager::impl::running_state() const {
    running_pid();
    auto s = read_state();
    if (!s)
        throw_error(errc::not_running, "VM " + opts.name + " has no state file");
    return *s;
}

asio::awaitable<qmp::client>
manager::impl::monitor(std::chrono::milliseconds connect_timeout) const {
    qmp::client_options co;
    co.connect_timeout = connect_timeout;
    co_return co_await qmp::client::connect(files.qmp_socket.string(), co);
}

std::optional<vm_state> manager::impl::read_state() const {
    boost::system::error_code ec;
    return parse_state(sys::read_file(files.state), ec);
}

// Atomic (a reader sees the old record or the new one, never part of one)
// but not flushed: the record describes a QEMU that a host crash ends
// anyway, and `settle_state` rebuilds "not running" from the pid file's lock
// whichever record survives (an unreadable one counts as none). A flush of
// the file and its directory cost 1.5-2 ms of every start on ext4.
void manager::impl::write_state(const vm_state& s) {
    write_file_atomic(files.state, render_state(s), fs::perms(0600), false);
}

// Brings the recorded state up to date when QEMU has ended since it was
// written: how it ended comes from the supervisor's exit-status file and,
// for a clean exit nobody asked for, from QEMU's own log.
std::optional<vm_state> manager::impl::settle_state(state_record record) {
    auto s = read_state();
    if (!s || s->ended_at != 0 || s->pid == 0)
        return s;
    if (lock_owner(files.pidfile))
        return s;
    auto how = process::read_exit_status(files.exit_status);
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
    s->ended_at = detail::unix_now();
    s->stopping = false;
    if (record == state_record::persist)
        write_state(*s);
    return s;
}

void manager::impl::clean_runtime(runtime_logs logs) {
    std::error_code ec;
    for (const auto* p : {&files.qmp_socket, &files.console_socket, &files.monitor_socket,
                          &files.agent_socket, &files.pidfile, &files.exit_status})
        fs::remove(*p, ec);
    // Extra QMP sockets, however many the QEMU that made them had.
    std::vector<fs::path> extra;
    for (fs::directory_iterator it(files.runtime, ec), end; !ec && it != end; it.increment(ec)) {
        auto n = it->path().filename().string();
        if (n.starts_with("qmp-") && n.ends_with(".sock"))
            extra.push_back(it->path());
    }
    for (const auto& x : extra)
        fs::remove(x, ec);
    if (logs == runtime_logs::remove) {
        fs::remove(files.console_log, ec);
        fs::remove(files.qemu_log, ec);
        fs::remove(files.known_hosts, ec);
        qemu_log_forwarded = 0;
    }
}

std::string manager::impl::qemu_log_tail(std::size_t lines) const {
    return console::read_tail(files.qemu_log, lines);
}

std::string manager::impl::console_tail(std::size_t lines) const {
    return console::read_tail(files.console_log, lines);
}

// The console's last lines, led by the line that says the guest kernel
// panicked when there is one (a panic's stack dump pushes it out of a short tail).
std::string manager::impl::console_diagnosis() const {
    std::string panic;
    std::istringstream in(console_tail(400));
    for (std::string line; std::getline(in, line);)
        if (panic.empty() && (line.find("Kernel panic") != std::string::npos ||
                              line.find("sysrq: Trigger a crash") != std::string::npos))
            panic = line;
    return (panic.empty() ? std::string() : "; the guest kernel panicked: " + panic) +
           "; serial console:\n" + console_tail(30);
}

void manager::impl::prepare_vars_store(const fs::path& vars_template) {
    std::error_code ec;
    auto type = fs::symlink_status(files.efi_vars, ec).type();
    if (type == fs::file_type::not_found)
        copy_vars_template(vars_template, files.efi_vars);
    else if (type != fs::file_type::regular) // QEMU would write through a link
        throw_error(errc::unsupported, "UEFI variable store " + files.efi_vars.string() +
                                           " is not a regular file; refusing to use it");
}

// The guest's host key: made on the first start, handed over in the seed.
asio::awaitable<cloudinit::ssh_host_key> manager::impl::host_key() {
    co_return co_await detail::guest_host_key(opts, files);
}

ssh::target manager::impl::ssh_target() const {
    auto s = read_state();
    if (!lock_owner(files.pidfile) || !s)
        throw_error(errc::not_running, "VM " + opts.name + " is not running");
    const port_forward* fwd = nullptr;
    for (const auto& p : s->ports)
        if (p.guest_port == 22)
            fwd = &p;
    if (!fwd)
        throw_error(errc::invalid_argument,
                    "VM " + opts.name + " has no port forward to guest port 22");
    return detail::guest_ssh_target(opts, files, *fwd);
}

} // namespace localvm::qemu
