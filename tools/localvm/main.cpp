// The localvm command: a thin client of the library's public API.
#include <localvm/atomic_file.hpp>
#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/console/serial.hpp>
#include <localvm/error.hpp>
#include <localvm/libvirt/manager.hpp>
#include <localvm/qemu/list.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/ssh/keygen.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/this_coro.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "image_cmd.hpp"
#include "network_cmd.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "snapshot_cmd.hpp"
#include <unistd.h>

#ifndef LOCALVM_VERSION
#define LOCALVM_VERSION "unknown"
#endif

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace asio::experimental::awaitable_operators;
using localvm::errc;
using localvm::throw_error;

namespace {

namespace cli = localvm::cli;
namespace qemu = localvm::qemu;

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string read_file(const fs::path& p, std::string_view what) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        throw_error(errc::not_found, "cannot read " + std::string(what) + " " + p.string());
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void out_line(std::FILE* f, std::string_view line) {
    std::fwrite(line.data(), 1, line.size(), f);
    std::fputc('\n', f);
    std::fflush(f);
}

// The library's options for the VM the command names, and its files.
struct vm_setup {
    qemu::options options;
    qemu::layout files;
};

vm_setup setup_for(const cli::invocation& i) {
    vm_setup v;
    auto& o = v.options;
    o.name = i.name;
    o.data_dir = i.data_dir;
    o.runtime_dir = i.runtime_dir;
    if (i.accel)
        o.accel = *i.accel;
    if (i.net)
        o.net = *i.net;
    if (!i.qemu_binary.empty())
        o.qemu_binary = i.qemu_binary;
    if (!i.user.empty())
        o.ssh_user = i.user;
    if (!i.disk_size.empty())
        o.disk_size = i.disk_size;
    if (i.powerdown_timeout)
        o.stop.powerdown_timeout = *i.powerdown_timeout;
    v.files = qemu::make_layout(o);
    // Without --identity the VM has its own key pair, deleted with it.
    o.ssh_identity_file =
        i.identity.empty() ? v.files.data / "id_ed25519" : fs::absolute(i.identity);
    return v;
}

// Races `work` against following the console for the status line; the
// follower never completes on its own, so this returns (or throws) what
// `work` does once it is done.
asio::awaitable<void> with_console(cli::progress& p, const qemu::layout& files,
                                   asio::awaitable<void> work) {
    qemu::make_directories(files); // so that its log can be watched from the start
    auto guarded = [](asio::awaitable<void> w) -> asio::awaitable<std::exception_ptr> {
        try {
            co_await std::move(w);
        } catch (...) {
            co_return std::current_exception();
        }
        co_return nullptr;
    };
    auto r = co_await (guarded(std::move(work)) || cli::follow_console(p, files.console_log));
    if (r.index() == 0 && std::get<0>(r))
        std::rethrow_exception(std::get<0>(r));
}

localvm::start_options start_options_for(const cli::invocation& i, std::string public_key) {
    localvm::start_options s;
    if (i.cpus)
        s.cpus = *i.cpus;
    if (!i.memory.empty())
        s.memory = i.memory;
    s.ssh_authorized_key = std::move(public_key);
    s.monitor = i.monitor;
    if (!i.user_data.empty())
        s.user_data = read_file(i.user_data, "user-data file");
    if (!i.kernel.empty())
        s.boot =
            localvm::direct_boot{fs::absolute(i.kernel),
                                 i.initrd.empty() ? fs::path() : fs::absolute(i.initrd), i.cmdline};
    s.networks = i.networks;
    s.ports = i.forwards;
    if (s.ports.empty())
        s.ports = {localvm::port_forward{"127.0.0.1", 0, 22}};
    return s;
}

void attach_progress(qemu::manager& vm, cli::progress& p) {
    vm.set_output([&p](std::string_view line) { p.message(line); });
    vm.set_stage_sink(
        [&p](qemu::boot_stage s, std::string_view detail) { p.stage(qemu::to_string(s), detail); });
}

std::string ssh_summary(const std::vector<localvm::port_forward>& ports) {
    for (const auto& f : ports)
        if (f.guest_port == 22)
            return f.host_address + ":" + std::to_string(f.host_port);
    return "no forward to port 22";
}

// Starts the VM; with `ready`, also waits for SSH in the same call
// (qemu::manager::start_and_wait_ready): a clone's guest clock is then set
// while SSH comes up rather than before `start` returns, which brings a
// cloud clone's first shell from about 2.5 s to 1.5 s.
asio::awaitable<void> boot(qemu::manager& vm, const cli::invocation& i, cli::progress& p,
                           std::optional<std::chrono::milliseconds> ready) {
    auto key =
        co_await localvm::ssh::ensure_key_pair(vm.config().ssh_identity_file, "localvm-" + i.name);
    auto s = start_options_for(i, key);
    p.activity("starting QEMU");
    if (ready)
        co_await vm.start_and_wait_ready(std::move(s), *ready);
    else
        co_await vm.start(std::move(s));
}

asio::awaitable<int> cmd_create(const cli::invocation& i, qemu::manager& vm, cli::progress& p) {
    co_await cli::create_vm(i, vm, p);
    p.finish();
    if (i.level != cli::verbosity::quiet)
        out_line(stderr, "created " + i.name + " (" + vm.files().disk.string() + ")");
    co_return 0;
}

// Before anything is made for it (directories, a key pair).
asio::awaitable<void> require_vm(const cli::invocation& i, localvm::manager& vm) {
    bool exists = co_await vm.exists();
    if (!exists)
        throw_error(errc::not_found, "VM " + i.name +
                                         " does not exist; create it with `localvm create " +
                                         i.name + " --base IMAGE`");
}

asio::awaitable<int> cmd_start(const cli::invocation& i, qemu::manager& vm, cli::progress& p) {
    co_await require_vm(i, vm);
    co_await with_console(p, vm.files(), boot(vm, i, p, std::nullopt));
    p.finish();
    auto st = co_await vm.query();
    if (i.level != cli::verbosity::quiet && st.state)
        out_line(stderr, "started " + i.name + " (pid " + std::to_string(st.pid.value_or(0)) +
                             ", " + std::string(qemu::to_string(st.state->accel)) +
                             "); ssh: " + ssh_summary(st.state->ports) +
                             (st.monitor ? "; monitor: localvm monitor " + i.name : ""));
    co_return 0;
}

asio::awaitable<int> run_remote(localvm::manager& vm, const cli::invocation& i) {
    if (i.remote_command.empty()) {
        auto r = co_await vm.shell("", {});
        co_return r.exit_status;
    }
    localvm::shell_options so;
    so.out = [](std::string_view line) {
        out_line(stdout, line);
    };
    so.err = [](std::string_view line) {
        out_line(stderr, line);
    };
    auto r = co_await vm.shell(cli::joined_command(i.remote_command), std::move(so));
    co_return r.exit_status;
}

asio::awaitable<int> cmd_up(const cli::invocation& i, qemu::manager& vm, cli::progress& p) {
    bool exists = co_await vm.exists();
    if (!exists) {
        if (i.base.empty() && i.image.empty())
            throw_error(errc::not_found, "VM " + i.name +
                                             " does not exist; give --base IMAGE or --image URL "
                                             "to create it");
        co_await cli::create_vm(i, vm, p);
    }
    bool running = co_await vm.running();
    if (running && i.monitor && i.level != cli::verbosity::quiet) {
        // A running QEMU cannot gain a monitor: say so rather than ignore it.
        auto st = co_await vm.query();
        if (!st.monitor)
            out_line(stderr, "localvm: up " + i.name +
                                 ": already running without a monitor; --monitor applies from "
                                 "its next start");
    }
    auto wait = [&]() -> asio::awaitable<void> {
        const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(i.timeout);
        if (!running) {
            co_await boot(vm, i, p, timeout);
            co_return;
        }
        p.activity("already running, waiting for SSH");
        co_await vm.wait_ready(timeout);
    };
    co_await with_console(p, vm.files(), wait());
    p.finish();
    if (i.level != cli::verbosity::quiet)
        std::fputs(cli::render_timeline_table(p.events()).c_str(), stderr);
    if (!i.timeline_file.empty())
        localvm::write_file_atomic(i.timeline_file, cli::render_timeline_json(p.events()) + "\n",
                                   fs::perms(0644), false);
    if (i.remote_command.empty())
        co_return 0;
    co_return co_await run_remote(vm, i);
}

asio::awaitable<int> cmd_status(const cli::invocation& i, qemu::manager& vm) {
    cli::status_report r;
    r.name = i.name;
    r.st = co_await vm.query();
    r.files = vm.files();
    r.identity = vm.config().ssh_identity_file;
    r.now = unix_now();
    if (!r.st.exists && !r.st.running)
        throw_error(errc::not_found,
                    "VM " + i.name + " does not exist (no disk at " + r.files.disk.string() + ")");
    auto text = i.json ? cli::render_status_json(r) + "\n" : cli::render_status_text(r);
    std::fputs(text.c_str(), stdout);
    co_return 0;
}

// console and monitor: the terminal on one of QEMU's socket chardevs (raw
// mode, Ctrl-] detaches) until it detaches, input ends or QEMU exits.
asio::awaitable<int> cmd_attach(const cli::invocation& i, qemu::manager& vm) {
    const bool monitor = i.cmd == cli::command::monitor;
    localvm::console::attach_options ao;
    ao.hint = localvm::console::attach_hint(i.name, monitor ? "QEMU monitor" : "serial console");
    if (!monitor) {
        co_await vm.attach_console(std::move(ao));
        co_return 0;
    }
    try {
        co_await vm.attach_monitor(std::move(ao));
    } catch (const localvm::error& e) {
        // The library names its own option; here the fix is a flag.
        if (e.code() != errc::unsupported)
            throw;
        throw_error(errc::unsupported, "VM " + i.name +
                                           " has no monitor: it was started without --monitor; "
                                           "stop it, then start it with --monitor");
    }
    co_return 0;
}

// sync and cp: rsync over ssh, either way.
asio::awaitable<int> cmd_sync(const cli::invocation& i, localvm::manager& vm, cli::progress& p) {
    localvm::sync_options so;
    so.chown = i.chown;
    so.excludes = i.excludes;
    so.direction =
        i.from_guest ? localvm::sync_direction::from_guest : localvm::sync_direction::to_guest;
    p.activity(i.from_guest ? "copying " + i.name + ":" + i.from + " to " + i.to
                            : "copying " + i.from + " to " + i.name + ":" + i.to);
    co_await vm.sync(i.from, i.to, std::move(so));
    p.finish();
    co_return 0;
}

asio::awaitable<int> cmd_forward(const cli::invocation& i, qemu::manager& vm) {
    if (!i.forward_spec) {
        auto ports = co_await vm.ports();
        for (const auto& f : ports)
            out_line(stdout, cli::forward_text(f));
        co_return 0;
    }
    if (i.remove_forward) {
        co_await vm.remove_forward(*i.forward_spec);
        if (i.level != cli::verbosity::quiet)
            out_line(stderr, "removed the forward from " + i.forward_spec->host_address + ":" +
                                 std::to_string(i.forward_spec->host_port) + " on " + i.name);
        co_return 0;
    }
    auto made = co_await vm.add_forward(*i.forward_spec);
    out_line(stdout, cli::forward_text(made));
    co_return 0;
}

asio::awaitable<int> cmd_list(const cli::invocation& i) {
    qemu::options o;
    o.data_dir = i.data_dir;
    o.runtime_dir = i.runtime_dir;
    auto vms = co_await qemu::list_vms(o);
    auto text = i.json ? cli::render_list_json(vms, unix_now()) + "\n"
                       : cli::render_list_table(vms, unix_now());
    std::fputs(text.c_str(), stdout);
    co_return 0;
}

asio::awaitable<int> cmd_stop(const cli::invocation& i, localvm::manager& vm, cli::progress& p) {
    p.activity("stopping " + i.name);
    co_await vm.stop();
    p.finish();
    if (i.level != cli::verbosity::quiet)
        out_line(stderr, "stopped " + i.name);
    co_return 0;
}

asio::awaitable<int> cmd_delete(const cli::invocation& i, localvm::manager& vm) {
    // Each co_await on its own: GCC 12 miscompiles co_await inside `&&`.
    bool exists = co_await vm.exists();
    bool running = co_await vm.running();
    co_await vm.remove(); // also clears what a failed create or a stray call left
    if (!exists && !running)
        throw_error(errc::not_found, "VM " + i.name + " does not exist");
    if (i.level != cli::verbosity::quiet)
        out_line(stderr, "deleted " + i.name);
    co_return 0;
}

int cmd_cidata(const cli::invocation& i) {
    localvm::cloudinit::seed s;
    if (!i.user_data.empty())
        s.user_data = read_file(i.user_data, "user-data file");
    if (!i.meta_data.empty()) {
        s.raw_meta_data = read_file(i.meta_data, "meta-data file");
    } else {
        s.meta.instance_id = i.instance_id.empty() ? "iid-local01" : i.instance_id;
        s.meta.local_hostname = i.hostname;
        for (const auto& k : i.ssh_keys) {
            std::istringstream in(read_file(k, "public key file"));
            for (std::string line; std::getline(in, line);)
                if (!line.empty() && line[0] != '#')
                    s.meta.public_keys.push_back(line);
        }
    }
    if (!i.network_config.empty())
        s.network_config = read_file(i.network_config, "network-config file");
    if (!i.vendor_data.empty())
        s.vendor_data = read_file(i.vendor_data, "vendor-data file");
    localvm::cloudinit::write_seed_file(i.output, s);
    return 0;
}

// --- the libvirt backend (--connect URI, or LOCALVM_CONNECT) ---------------
// The same commands on libvirt::manager; what only the QEMU backend has
// (monitor, forward, snapshots, clones, networks, list) is refused.

// Lifecycle messages to --verbose; console lines (the manager reads the
// console stream while it waits) to the status line and the timeline.
void attach_progress(localvm::libvirt::manager& vm, cli::progress& p, const std::string& name) {
    const std::string console_prefix = "[" + name + "] console: ";
    vm.set_output([&p, console_prefix](std::string_view line) {
        if (line.starts_with(console_prefix)) {
            std::string text(line.substr(console_prefix.size()));
            p.console_line(text);
            p.console_latest(std::move(text));
            p.redraw();
            return;
        }
        p.message(line);
    });
}

asio::awaitable<void> boot(localvm::libvirt::manager& vm, const cli::invocation& i,
                           const qemu::options& o, cli::progress& p) {
    auto key = co_await localvm::ssh::ensure_key_pair(o.ssh_identity_file, "localvm-" + i.name);
    auto s = start_options_for(i, key);
    p.activity("starting the domain");
    co_await vm.start(std::move(s));
}

asio::awaitable<int> libvirt_create(const cli::invocation& i, localvm::libvirt::manager& vm,
                                    cli::progress& p) {
    if (!i.image.empty())
        throw_error(errc::unsupported, "--image is not available with --connect yet; give --base");
    if (i.base.empty())
        throw_error(errc::invalid_argument, "create needs --base IMAGE");
    p.activity("creating the disk volume");
    co_await vm.create(i.base);
    co_return 0;
}

asio::awaitable<int> libvirt_status(const cli::invocation& i, localvm::libvirt::manager& vm) {
    bool exists = co_await vm.exists();
    bool running = co_await vm.running();
    if (!exists && !running)
        throw_error(errc::not_found, "VM " + i.name + " does not exist");
    std::string text = "name:     " + i.name + "\nbackend:  libvirt (" + i.connect +
                       ")\nstate:    " + (running ? "running" : "stopped") + "\n";
    if (running) {
        auto pid = co_await vm.pid();
        if (pid)
            text += "pid:      " + std::to_string(*pid) + "\n";
        auto ports = co_await vm.ports();
        for (const auto& f : ports)
            text += "forward:  " + cli::forward_text(f) + "\n";
    }
    std::fputs(text.c_str(), stdout);
    co_return 0;
}

asio::awaitable<int> run_libvirt(const cli::invocation& i, cli::progress& p) {
    auto setup = setup_for(i);
    localvm::libvirt::manager_options lo;
    lo.uri = i.connect;
    if (!i.pool.empty())
        lo.pool = i.pool;
    lo.vm = setup.options;
    auto executor = co_await asio::this_coro::executor;
    localvm::libvirt::manager vm(executor, lo);
    attach_progress(vm, p, i.name);
    switch (i.cmd) {
    case cli::command::create: {
        co_await libvirt_create(i, vm, p);
        p.finish();
        if (i.level != cli::verbosity::quiet)
            out_line(stderr, "created " + i.name + " (volume " + i.name + ".qcow2 in pool " +
                                 lo.pool + " at " + lo.uri + ")");
        co_return 0;
    }
    case cli::command::start:
        co_await require_vm(i, vm);
        co_await boot(vm, i, lo.vm, p);
        p.finish();
        if (i.level != cli::verbosity::quiet)
            out_line(stderr, "started " + i.name + " through " + lo.uri);
        co_return 0;
    case cli::command::up: {
        bool exists = co_await vm.exists();
        if (!exists) {
            if (i.base.empty())
                throw_error(errc::not_found,
                            "VM " + i.name + " does not exist; give --base IMAGE to create it");
            co_await libvirt_create(i, vm, p);
        }
        bool running = co_await vm.running();
        if (!running)
            co_await boot(vm, i, lo.vm, p);
        p.activity(running ? "already running, waiting for SSH" : "booting, waiting for SSH");
        co_await vm.wait_ready(std::chrono::duration_cast<std::chrono::milliseconds>(i.timeout));
        p.finish();
        if (i.level != cli::verbosity::quiet)
            std::fputs(cli::render_timeline_table(p.events()).c_str(), stderr);
        if (i.remote_command.empty())
            co_return 0;
        co_return co_await run_remote(vm, i);
    }
    case cli::command::status:
        co_return co_await libvirt_status(i, vm);
    case cli::command::shell:
        co_return co_await run_remote(vm, i);
    case cli::command::console:
        co_await vm.console();
        co_return 0;
    case cli::command::sync:
    case cli::command::copy:
        co_return co_await cmd_sync(i, vm, p);
    case cli::command::stop:
        co_return co_await cmd_stop(i, vm, p);
    case cli::command::remove:
        co_return co_await cmd_delete(i, vm);
    default:
        break;
    }
    throw_error(errc::unsupported, std::string(cli::command_word(i.cmd)) +
                                       " is not available with --connect (the QEMU backend only)");
}

asio::awaitable<int> run(const cli::invocation& given, cli::progress& p) {
    // The start of a clone takes its machine from the snapshot by default.
    auto i = cli::with_clone_defaults(given);
    i.connect = cli::connect_uri(i, std::getenv("LOCALVM_CONNECT"));
    if (i.cmd == cli::command::snapshot && i.snapshot_action != "save")
        co_return co_await cli::cmd_snapshot_store(i);
    if (i.cmd == cli::command::image)
        co_return co_await cli::cmd_image(i, p);
    if (i.cmd == cli::command::list)
        co_return co_await cmd_list(i);
    if (i.cmd == cli::command::network)
        co_return co_await cli::cmd_network(i);
    if (!i.connect.empty())
        co_return co_await run_libvirt(i, p);
    auto setup = setup_for(i);
    auto executor = co_await asio::this_coro::executor;
    qemu::manager vm(executor, setup.options);
    attach_progress(vm, p);
    switch (i.cmd) {
    case cli::command::create:
        co_return co_await cmd_create(i, vm, p);
    case cli::command::start:
        co_return co_await cmd_start(i, vm, p);
    case cli::command::up:
        co_return co_await cmd_up(i, vm, p);
    case cli::command::status:
        co_return co_await cmd_status(i, vm);
    case cli::command::shell:
        co_return co_await run_remote(vm, i);
    case cli::command::console:
    case cli::command::monitor:
        co_return co_await cmd_attach(i, vm);
    case cli::command::sync:
    case cli::command::copy:
        co_return co_await cmd_sync(i, vm, p);
    case cli::command::forward:
        co_return co_await cmd_forward(i, vm);
    case cli::command::stop:
        co_return co_await cmd_stop(i, vm, p);
    case cli::command::remove:
        co_return co_await cmd_delete(i, vm);
    case cli::command::snapshot:
        co_return co_await cli::cmd_snapshot_save(i, vm, p);
    case cli::command::clone:
        co_return co_await cli::cmd_clone(i, vm, p);
    default:
        break;
    }
    co_return 0;
}

// "localvm: up tiny: <first line of what went wrong>"; --verbose adds the rest.
void report_failure(const cli::invocation& i, std::exception_ptr e) {
    std::string what;
    bool verbose = i.level == cli::verbosity::verbose;
    try {
        std::rethrow_exception(e);
    } catch (const localvm::error& err) {
        what = err.diagnostic().empty() ? err.code().message() : err.diagnostic();
    } catch (const std::exception& err) {
        what = err.what();
    }
    auto nl = what.find('\n');
    std::string first = what.substr(0, nl);
    if (nl != std::string::npos && !verbose)
        first += " (--verbose shows more)";
    std::string subject = std::string(cli::command_word(i.cmd));
    if (i.cmd == cli::command::snapshot && i.snapshot_action != "save")
        subject += " " + i.snapshot_action + (i.snapshot.empty() ? "" : " " + i.snapshot);
    else if (!i.name.empty())
        subject += " " + i.name;
    else if (!i.output.empty())
        subject += " " + i.output.string();
    else if (!i.image_action.empty())
        subject += " " + i.image_action;
    else if (!i.network_action.empty())
        subject += " " + i.network_action + (i.network.empty() ? "" : " " + i.network);
    // Diagnostics carry guest text (QEMU's stderr, console lines).
    out_line(stderr, cli::terminal_safe("localvm: " + subject + ": " + first));
    if (verbose && nl != std::string::npos)
        out_line(stderr, cli::terminal_safe(what.substr(nl + 1)));
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    auto parsed = cli::parse(args);
    if (auto* bad = std::get_if<cli::usage_error>(&parsed)) {
        auto word = cli::command_word(bad->cmd);
        std::fprintf(stderr, "localvm: %s\nTry 'localvm%s%s --help'.\n", bad->message.c_str(),
                     word.empty() ? "" : " ", std::string(word).c_str());
        return 2;
    }
    const auto& inv = std::get<cli::invocation>(parsed);
    if (inv.help || inv.cmd == cli::command::usage) {
        std::fputs(cli::help_text(inv.cmd).c_str(), stdout);
        return 0;
    }
    if (inv.cmd == cli::command::version) {
        std::puts("localvm " LOCALVM_VERSION);
        return 0;
    }
    // A closed pipe must be an error on write, not a silent death.
    std::signal(SIGPIPE, SIG_IGN);
    if (inv.cmd == cli::command::cidata) {
        try {
            return cmd_cidata(inv);
        } catch (...) {
            report_failure(inv, std::current_exception());
            return 1;
        }
    }

    asio::io_context ctx;
    cli::progress p(inv.name, inv.level, ::isatty(STDERR_FILENO) == 1,
                    std::chrono::steady_clock::now());
    int status = 1;
    bool interrupted = false;
    // Ctrl-C and SIGTERM cancel the command: the library then ends what it
    // spawned (a cancelled start leaves no QEMU running).
    asio::cancellation_signal cancel;
    asio::signal_set signals(ctx, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (ec)
            return;
        interrupted = true;
        cancel.emit(asio::cancellation_type::terminal);
    });
    asio::co_spawn(ctx, run(inv, p),
                   asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, int rc) {
                       signals.cancel();
                       p.finish();
                       if (!e) {
                           status = rc;
                           return;
                       }
                       if (interrupted) {
                           out_line(stderr, "localvm: " + std::string(cli::command_word(inv.cmd)) +
                                                " " + inv.name + ": interrupted");
                           status = 130;
                           return;
                       }
                       report_failure(inv, e);
                       status = 1;
                   }));
    ctx.run();
    return status;
}
