// qemu::manager: each lifecycle call as a sequence of named steps. The
// steps live in manager::impl (manager_impl.hpp): plan.cpp plans a start,
// bring_up.cpp spawns QEMU until it runs, stop.cpp ends it, vm_files.cpp
// keeps the VM's files.
#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/console/drain.hpp>
#include <localvm/console/log.hpp>
#include <localvm/console/serial.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/ssh/command.hpp>
#include <localvm/ssh/probe.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>

#include <signal.h>

#include "base_check.hpp"
#include "guest_ssh.hpp"
#include "manager_impl.hpp"
#include "plan.hpp"
#include "snapshot_files.hpp"
#include "sys/file.hpp"
#include "sys/secure_dir.hpp"
#include "vm_networks.hpp"
#include "watch.hpp"

namespace localvm::qemu {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using detail::lock_owner;
using std::chrono::milliseconds;

namespace {

fs::path default_qemu_binary(arch a) {
    return a == arch::arm64 ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

} // namespace

manager::impl::impl(asio::any_io_executor ex, options o)
    : executor(std::move(ex))
    , opts(std::move(o))
    , files(make_layout(opts)) {
    if (opts.qemu_binary.empty())
        opts.qemu_binary = default_qemu_binary(opts.architecture);
}

manager::manager(asio::any_io_executor executor, options opts)
    : impl_(std::make_unique<impl>(std::move(executor), std::move(opts))) {}

manager::~manager() = default;
manager::manager(manager&&) noexcept = default;
manager& manager::operator=(manager&&) noexcept = default;

const options& manager::config() const noexcept {
    return impl_->opts;
}

const layout& manager::files() const noexcept {
    return impl_->files;
}

std::string manager::addr() const {
    return "10.0.2.2";
}

void manager::set_output(line_sink sink) {
    impl_->output = std::move(sink);
}

void manager::set_stage_sink(stage_sink sink) {
    impl_->stages = std::move(sink);
}

std::string manager::console_tail(std::size_t lines) const {
    return impl_->console_tail(lines);
}

asio::awaitable<void> manager::create(fs::path base_image) {
    impl& vm = *impl_;
    const auto disk_bytes = detail::requested_disk_bytes(vm.opts);
    if (!fs::exists(base_image))
        throw_error(errc::not_found, "base image " + base_image.string() + " does not exist");
    base_image = fs::absolute(base_image);
    vm.ensure_dirs();
    auto lock = co_await vm.lock();
    if (fs::exists(vm.files.disk))
        throw_error(errc::already_exists,
                    "VM " + vm.opts.name + " already exists (" + vm.files.disk.string() + ")");

    // The base may be hostile: qemu-img reads it under limits, and one that
    // makes QEMU open other host files is refused.
    const auto format = co_await detail::check_base(vm.opts, base_image);

    auto tmp = vm.files.disk;
    tmp += ".tmp-create";
    std::error_code ec;
    fs::remove(tmp, ec);
    process::options mk;
    mk.argv = {vm.opts.qemu_img.string(), "create",    "-q", "-f", "qcow2", "-F", format, "-b",
               base_image.string(),       tmp.string()};
    if (disk_bytes)
        mk.argv.push_back(std::to_string(*disk_bytes));
    vm.say("creating " + vm.files.disk.string() + " on " + base_image.string() + " (" + format +
           ")");
    try {
        co_await process::run_checked(mk);
        fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write); // the guest's disk
        fs::rename(tmp, vm.files.disk);
    } catch (...) {
        fs::remove(tmp, ec);
        throw;
    }
}

asio::awaitable<bool> manager::exists() {
    co_return fs::exists(impl_->files.disk);
}

asio::awaitable<bool> manager::running() {
    co_return lock_owner(impl_->files.pidfile).has_value();
}

asio::awaitable<std::optional<pid_t>> manager::pid() {
    co_return lock_owner(impl_->files.pidfile);
}

asio::awaitable<status> manager::query() {
    impl& vm = *impl_;
    if (!lock_owner(vm.files.pidfile) && !fs::exists(vm.files.exit_status)) {
        // QEMU just ended: its supervisor writes the exit status right after.
        // Not when the state says the end is settled already (stop removed
        // the status file it read): nothing more will come.
        auto recorded = vm.read_state();
        if (recorded && recorded->ended_at == 0 && recorded->pid != 0)
            co_await detail::wait_for_path(vm.files.exit_status, milliseconds(1000));
    }
    co_return query_now();
}

asio::awaitable<std::vector<port_forward>> manager::ports() {
    auto s = impl_->read_state();
    if (!lock_owner(impl_->files.pidfile) || !s)
        throw_error(errc::not_running, "VM " + impl_->opts.name + " is not running");
    co_return s->ports;
}

asio::awaitable<void> manager::start(start_options so) {
    auto clock = co_await impl_->start(std::move(so));
    if (!clock)
        co_return;
    const pid_t pid = impl_->running_pid();
    std::exception_ptr failure;
    try {
        co_await impl_->set_clock(std::move(*clock)); // throws only when cancelled
    } catch (...) {
        failure = std::current_exception();
    }
    if (!failure)
        co_return;
    // As any start that fails: the QEMU it spawned goes.
    co_await asio::this_coro::reset_cancellation_state();
    std::optional<process::pidfd> fd;
    try {
        fd.emplace(process::pidfd::open(pid));
    } catch (const localvm::error&) {
    }
    if (fd) {
        fd->send_signal(SIGKILL);
        co_await fd->wait_exit(milliseconds(5000));
    }
    std::rethrow_exception(failure);
}

asio::awaitable<void> manager::start_and_wait_ready(start_options so, milliseconds timeout) {
    auto clock = co_await impl_->start(std::move(so));
    if (!clock) {
        co_await wait_ready(timeout);
        co_return;
    }
    // The restored guest's clock set while SSH comes up, not before: both
    // wait on the guest, which under TCG is slow right after a restore.
    auto ex = co_await asio::this_coro::executor;
    auto [order, clock_error, ready_error] =
        co_await asio::experimental::make_parallel_group(
            asio::co_spawn(ex, impl_->set_clock(std::move(*clock)), asio::deferred),
            asio::co_spawn(ex, wait_ready(timeout), asio::deferred))
            .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
    (void)order;
    if (ready_error)
        std::rethrow_exception(ready_error);
    if (clock_error)
        std::rethrow_exception(clock_error);
}

asio::awaitable<std::optional<detail::pending_clock>> manager::impl::start(start_options so) {
    impl& vm = *this;
    auto plan = detail::plan_start(vm.opts, vm.files, so);
    auto networks = detail::check_networks(so.networks, vm.opts.name);
    // A VM that was never created gets no directories either (checked again
    // under the lock, in case a `delete` runs meanwhile).
    auto require_disk = [&vm] {
        if (!fs::exists(vm.files.disk))
            throw_error(errc::not_found, "VM " + vm.opts.name + " was not created (no disk at " +
                                             vm.files.disk.string() + ")");
    };
    require_disk();
    vm.ensure_dirs();
    auto lock = co_await vm.lock();
    if (auto owner = lock_owner(vm.files.pidfile))
        throw_error(errc::already_running, "VM " + vm.opts.name + " is already running (pid " +
                                               std::to_string(*owner) + ")");
    require_disk();
    auto previous = vm.settle_state(state_record::persist);
    // A clone's first start restores its snapshot's machine instead of
    // booting; it keeps the seed and host key its guest already has
    // (snapshot_save.cpp). Once restored, its disk is its own: later starts
    // boot that disk cold, as any VM's (the saved memory would not match it).
    auto restore = detail::read_origin(vm.files);
    if (restore && restore->restored)
        restore.reset();
    if (restore) {
        detail::check_restore(*restore, plan.launch.cpus, plan.launch.memory_mib, plan.launch.boot);
        detail::apply_restore(plan.launch, *restore);
    }
    if (plan.launch.uefi)
        vm.prepare_vars_store(plan.vars_template);
    if (vm.opts.host_key == host_key_policy::pinned && !restore) {
        auto key = co_await vm.host_key();
        detail::pin_host_key(plan, vm.opts, so, key);
    }
    // Networks: the switches run and the addresses are ours from here on.
    auto joined = co_await detail::join_networks(vm.opts, vm.files, std::move(networks));
    detail::add_networks(plan.launch, plan.seed, joined, so.user_data);
    // A master of the VM's last run (its QEMU just died) must not serve this one.
    co_await detail::end_guest_master(vm.files, [&vm](const std::string& l) { vm.say(l); });
    vm.clean_runtime(runtime_logs::remove);
    if (!restore)
        cloudinit::write_seed_file(vm.files.seed, plan.seed);
    // launch_detached yields once before it spawns: with many VMs started
    // at once, all prepare first and then spawn back to back.
    co_return co_await vm.launch(std::move(plan.launch), std::move(joined.state), previous);
}

asio::awaitable<void> manager::set_link(std::string network, bool up) {
    impl& vm = *impl_;
    vm.ensure_dirs();
    auto lock = co_await vm.lock();
    vm.say("link to network " + network + (up ? " up" : " down"));
    auto s = vm.running_state();
    auto nic = std::find_if(s.nics.begin(), s.nics.end(),
                            [&](const nic_state& n) { return n.network == network; });
    if (nic == s.nics.end())
        throw_error(errc::not_found, "VM " + vm.opts.name + " has no NIC on network " + network);
    auto client = co_await vm.monitor(std::chrono::seconds(10));
    boost::json::object args;
    args["name"] = nic->id;
    args["up"] = up;
    qmp::execute_options eo;
    eo.timeout = std::chrono::seconds(10);
    co_await client.execute("set_link", std::move(args), eo);
    client.close();
    nic->link_up = up;
    vm.write_state(s);
}

asio::awaitable<void> manager::wait_ready(milliseconds timeout) {
    auto t = impl_->ssh_target();
    pid_t pid = impl_->running_pid();
    auto abort = [this, pid]() -> asio::awaitable<std::string> {
        co_await process::wait_exit(pid, no_deadline);
        co_await console::wait_drained(impl_->files.console_log, milliseconds(2000));
        co_return "QEMU (pid " + std::to_string(pid) + ") exited while waiting for SSH" +
            impl_->console_diagnosis();
    };
    // A clone runs on from a saved guest whose network was up: a silent
    // connection is its sshd being slow (a cold translation cache under
    // TCG), not a SYN lost on the way; replacing it every 500 ms kept a
    // cloud clone's sshd at MaxStartups for good (probe.hpp).
    co_await detail::wait_guest_ssh(
        impl_->opts, std::move(t), timeout, detail::is_clone(impl_->files), abort,
        [this](const std::string& l) { impl_->say(l); }, impl_->stages);
}

asio::awaitable<shell_result> manager::shell(std::string command, shell_options opts) {
    co_return co_await detail::guest_shell(impl_->ssh_target(), std::move(command),
                                           std::move(opts));
}

asio::awaitable<void> manager::sync(fs::path from, std::string to, sync_options opts) {
    co_await detail::guest_sync(impl_->ssh_target(), std::move(from), std::move(to),
                                std::move(opts), impl_->output);
}

asio::awaitable<void> manager::console() {
    console::attach_options ao;
    ao.hint = console::attach_hint(impl_->opts.name);
    co_await attach_console(std::move(ao));
}

asio::awaitable<console::attach_end> manager::attach_console(console::attach_options opts) {
    impl_->running_pid();
    co_return co_await console::attach(impl_->files.console_socket, std::move(opts));
}

asio::awaitable<console::attach_end> manager::attach_monitor(console::attach_options opts) {
    impl_->running_pid();
    // QEMU makes the socket before it runs the guest and keeps it while it
    // lives: no socket on a running VM means it was started without one.
    if (!fs::exists(impl_->files.monitor_socket))
        throw_error(errc::unsupported, "VM " + impl_->opts.name +
                                           " was started without a human monitor; start it with "
                                           "start_options::monitor = true to use attach_monitor");
    opts.endpoint = "QEMU monitor";
    co_return co_await console::attach(impl_->files.monitor_socket, std::move(opts));
}

asio::awaitable<std::string> manager::wait_for_console(std::string text, milliseconds timeout) {
    pid_t pid = impl_->running_pid();
    auto abort = [pid]() -> asio::awaitable<std::string> {
        co_await process::wait_exit(pid, no_deadline);
        co_return "QEMU (pid " + std::to_string(pid) + ") exited";
    };
    co_return co_await console::wait_for_console(
        impl_->files.console_log, console::text_matcher(std::move(text)), timeout, abort);
}

asio::awaitable<void> manager::stop() {
    impl& vm = *impl_;
    // No runtime directory, no pid file: nothing runs (and nothing is made).
    if (!fs::exists(vm.files.runtime))
        throw_error(errc::not_running, "VM " + vm.opts.name + " is not running");
    vm.ensure_dirs();
    auto lock = co_await vm.lock();
    auto owner = lock_owner(vm.files.pidfile);
    if (!owner) {
        vm.settle_state(state_record::persist);
        throw_error(errc::not_running, "VM " + vm.opts.name + " is not running");
    }
    co_await vm.stop(*owner);
}

asio::awaitable<snapshot_info> manager::snapshot(std::string name, snapshot_options so) {
    co_return co_await impl_->save_snapshot(std::move(name), so);
}

asio::awaitable<void> manager::create_from_snapshot(std::string snapshot) {
    co_await impl_->create_clone(std::move(snapshot));
}

asio::awaitable<void> manager::remove() {
    impl& vm = *impl_;
    // Whatever is there, a link too, is checked (and refused) by ensure_dirs.
    if (!sys::lstat_of(vm.files.runtime) && !sys::lstat_of(vm.files.data))
        co_return;
    vm.ensure_dirs();
    auto lock = co_await vm.lock();
    if (auto owner = lock_owner(vm.files.pidfile))
        throw_error(errc::already_running, "VM " + vm.opts.name + " is running (pid " +
                                               std::to_string(*owner) + "); stop it first");
    // The pid file is gone with a wiped runtime directory (logind removes
    // /run/user/<uid> at logout); QEMU's lock on the disk is not.
    if (detail::image_in_use(vm.files.disk))
        throw_error(errc::already_running,
                    "VM " + vm.opts.name + " is running: a QEMU holds its disk " +
                        vm.files.disk.string() + " open (its runtime directory " +
                        vm.files.runtime.string() + " was removed); stop that QEMU first");
    detail::forget_clone(vm.opts, vm.files);
    co_await detail::end_guest_master(vm.files, [&vm](const std::string& l) { vm.say(l); });
    sys::remove_tree(vm.files.data);
    sys::remove_tree(vm.files.runtime);
    vm.say("removed");
}

} // namespace localvm::qemu
