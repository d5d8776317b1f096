// libvirt::manager: the QEMU backend's plan, seed and SSH, with libvirt
// owning QEMU. The domain is transient (create-xml): it exists exactly while
// QEMU runs, so a stopped VM is its volumes alone.
#include <localvm/cloudinit/iso9660.hpp>
#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/console/channel.hpp>
#include <localvm/console/log.hpp>
#include <localvm/console/serial.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/libvirt/manager.hpp>
#include <localvm/libvirt/uri.hpp>
#include <localvm/process/child.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <csignal>
#include <tuple>
#include <utility>

#include "detail/await.hpp"
#include "detail/race.hpp"
#include "console/log_search.hpp"
#include "detail/undo.hpp"
#include "libvirt/console_scan.hpp"
#include "libvirt/domain_xml.hpp"
#include "libvirt/pool_copy.hpp"
#include "libvirt/transport.hpp"
#include "libvirt/volume_xml.hpp"
#include "qemu/base_check.hpp"
#include "qemu/guest_ssh.hpp"
#include "qemu/hostfwd.hpp"
#include "qemu/lock.hpp"
#include "qemu/plan.hpp"
#include "qemu/stop_machine.hpp"
#include "qemu/watch.hpp"
#include "sys/file.hpp"
#include "sys/secure_dir.hpp"

namespace localvm::libvirt {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

// virErrorNumber values the manager tells apart.
constexpr std::int32_t no_domain = 42;         // VIR_ERR_NO_DOMAIN
constexpr std::int32_t operation_invalid = 55; // VIR_ERR_OPERATION_INVALID
constexpr std::int32_t no_storage_pool = 49;   // VIR_ERR_NO_STORAGE_POOL
constexpr std::int32_t operation_failed = 9;   // VIR_ERR_OPERATION_FAILED (a console in use)
constexpr std::uint32_t shutdown_acpi = 1;     // VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
constexpr std::uint32_t destroy_graceful = 1;  // VIR_DOMAIN_DESTROY_GRACEFUL
constexpr std::uint32_t monitor_hmp = 1;       // VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP

bool active(domain_state s) {
    return s != domain_state::shutoff && s != domain_state::crashed && s != domain_state::nostate;
}

bool ended(const lifecycle& e) {
    return e.event == lifecycle_event::stopped || e.event == lifecycle_event::undefined;
}

} // namespace

struct manager::impl {
    asio::any_io_executor executor;
    manager_options opts;
    qemu::layout files;
    line_sink output;
    std::optional<client> conn;
    // Set for a remote daemon (an ssh URI): the daemon's files are not this
    // host's, and the guests' forwards are reached through this ssh hop.
    std::optional<ssh::jump_host> hop;

    impl(asio::any_io_executor ex, manager_options o)
        : executor(std::move(ex))
        , opts(std::move(o))
        , files(qemu::make_layout(opts.vm)) {
        std::string problem;
        auto u = parse_uri(opts.uri, problem);
        if (!u)
            throw_error(errc::invalid_argument, "libvirt URI " + opts.uri + ": " + problem);
        if (u->transport == transport_kind::ssh) {
            hop = detail::ssh_hop(
                *u, std::chrono::duration_cast<std::chrono::seconds>(ssh::target().connect_timeout),
                problem);
            if (!hop)
                throw_error(errc::invalid_argument, "libvirt URI " + opts.uri + ": " + problem);
        }
        if (opts.vm.accel == qemu::accelerator::automatic)
            opts.vm.accel = qemu::accelerator::tcg;
        if (opts.pool.empty())
            throw_error(errc::invalid_argument, "libvirt storage pool: empty name");
    }

    const std::string& name() const { return opts.vm.name; }
    bool remote() const { return hop.has_value(); }
    std::string overlay_name() const { return name() + ".qcow2"; }
    std::string seed_name() const { return name() + "-seed.iso"; }
    std::string vars_name() const { return name() + "-vars.fd"; }

    void say(const std::string& line) const {
        if (output)
            output("[" + name() + "] " + line);
    }

    // Where console lines read from the stream go ("console: LINE").
    line_sink console_echo() const {
        return [this](std::string_view line) {
            say(std::string(line));
        };
    }

    asio::awaitable<client*> connection() {
        if (!conn || conn->end() != connection_end::open) {
            conn.reset();
            conn.emplace(co_await client::connect(opts.uri, opts.client));
        }
        co_return &*conn;
    }

    asio::awaitable<pool_ref> pool() {
        auto* c = co_await connection();
        try {
            co_return co_await c->lookup_pool(opts.pool);
        } catch (const call_error& e) {
            if (e.libvirt_code() != no_storage_pool)
                throw;
        }
        throw_error(errc::not_found,
                    "libvirt storage pool " + opts.pool + " does not exist at " + opts.uri);
    }

    asio::awaitable<std::optional<vol_ref>> find_volume(std::string vol) {
        auto p = co_await pool();
        auto* c = co_await connection();
        co_return co_await detail::find_volume(*c, p, std::move(vol));
    }

    asio::awaitable<std::optional<domain_ref>> find_domain() {
        auto* c = co_await connection();
        try {
            co_return co_await c->lookup_domain(name());
        } catch (const call_error& e) {
            if (e.libvirt_code() != no_domain)
                throw;
        }
        co_return std::nullopt;
    }

    // The domain while it is active, else nullopt.
    asio::awaitable<std::optional<domain_ref>> active_domain() {
        auto dom = co_await find_domain();
        if (!dom)
            co_return std::nullopt;
        auto* c = co_await connection();
        try {
            // (No structured binding: GCC 12 miscompiles one in a coroutine.)
            auto state = co_await c->domain_get_state(*dom);
            if (active(state.first))
                co_return dom;
        } catch (const call_error& e) {
            if (e.libvirt_code() != no_domain)
                throw;
        }
        co_return std::nullopt;
    }

    asio::awaitable<domain_ref> running_domain() {
        auto dom = co_await active_domain();
        if (!dom)
            throw_error(errc::not_running, "VM " + name() + " is not running");
        co_return *dom;
    }

    // HMP `info usernet`: QEMU's forwards as bound.
    asio::awaitable<std::string> usernet(domain_ref dom) {
        auto* c = co_await connection();
        co_return co_await c->monitor_command(std::move(dom), "info usernet", monitor_hmp);
    }

    asio::awaitable<std::vector<port_forward>> bound_ports(domain_ref dom) {
        co_return qemu::detail::parse_usernet_forwards(co_await usernet(std::move(dom)));
    }

    asio::awaitable<ssh::target> ssh_target() {
        auto ports = co_await bound_ports(co_await running_domain());
        for (const auto& p : ports)
            if (p.guest_port == 22) {
                auto t = qemu::detail::guest_ssh_target(opts.vm, files, p);
                t.jump = hop; // the forward is on the daemon's host
                co_return t;
            }
        throw_error(errc::invalid_argument,
                    "VM " + name() + " has no port forward to guest port 22");
    }

    // Deregisters `events` whatever happened (the daemon refuses a second
    // registration for the same domain on one connection), then rethrows
    // `failure`. The caller resets its cancellation state first.
    static asio::awaitable<void> close_events(lifecycle_events& events,
                                              std::exception_ptr failure) {
        try {
            co_await events.close();
        } catch (const localvm::error&) {
            // A connection that ended took the registration with it.
        }
        if (failure)
            std::rethrow_exception(failure);
    }

    // Completes once the domain has stopped (again at once after that).
    using stop_hook = std::function<asio::awaitable<void>()>;

    // The lifecycle watch of wait_ready, wait_for_console and console:
    // registers for `dom`'s events, asks again whether it is active (it may
    // have stopped before the registration took hold), runs `body` with a
    // hook that completes once it stopped, and deregisters on every path,
    // cancellation included.
    asio::awaitable<void> watch_stop(domain_ref dom,
                                     std::function<asio::awaitable<void>(stop_hook)> body) {
        auto* c = co_await connection();
        auto events = co_await c->subscribe_lifecycle(dom);
        std::exception_ptr failure;
        try {
            auto still = co_await active_domain();
            auto stopped = std::make_shared<bool>(!still);
            stop_hook hook = [&events, stopped]() -> asio::awaitable<void> {
                while (!*stopped) {
                    auto e = co_await events.next();
                    *stopped = ended(e);
                }
            };
            co_await body(std::move(hook));
        } catch (...) {
            failure = std::current_exception();
        }
        co_await asio::this_coro::reset_cancellation_state();
        co_await close_events(events, failure);
    }

    // The domain's (first) console as a stream; nullopt when another client
    // holds it (libvirt allows one unless forced, and we never force).
    asio::awaitable<std::optional<stream>> open_console(domain_ref dom) {
        auto* c = co_await connection();
        try {
            co_return co_await c->open_console(std::move(dom));
        } catch (const call_error& e) {
            if (e.libvirt_code() != operation_failed)
                throw;
        }
        co_return std::nullopt;
    }

    // The console log file (the domain's `<log file>`), when this host has
    // it: a local daemon's QEMU writes it (a remote one gets no log path).
    // It holds the whole boot, which the stream cannot give (it carries
    // only what comes after it opens).
    bool local_log() const {
        std::error_code ec;
        return !remote() && fs::exists(files.console_log, ec);
    }

    // The console's last lines for a diagnostic: the log file's when this
    // host has one, else what the stream showed.
    std::string console_tail(const detail::console_scan* seen) const {
        auto tail = local_log() ? console::read_tail(files.console_log, 20) : std::string();
        if (tail.empty() && seen)
            tail = seen->tail();
        return tail;
    }

    // Serialises create, start, stop and remove of this VM between the
    // processes of this host, as the QEMU backend's lock does.
    asio::awaitable<qemu::detail::vm_lock> lock() {
        qemu::make_directories(files);
        const qemu::layout& l = files;
        co_return co_await qemu::detail::vm_lock::acquire(l.lock, l.runtime / "lock.sock",
                                                          opts.vm.lock_timeout, "VM " + name(),
                                                          [&l] { qemu::make_directories(l); });
    }

    // QEMU's pid from its pid file's lock; none over a remote connection
    // (the pid file is not passed then: its path is this host's).
    std::optional<pid_t> local_pid() const {
        if (remote())
            return std::nullopt;
        return qemu::detail::lock_owner(files.pidfile);
    }

    // `file` (this host's) as the daemon's host sees it: the path itself
    // for a local daemon, else its copy in the pool (uploaded once, by digest).
    asio::awaitable<fs::path> daemon_file(fs::path file) {
        if (!remote())
            co_return file;
        auto p = co_await pool();
        auto* c = co_await connection();
        detail::pool_copy_options o;
        o.lock_dir = qemu::runtime_root(opts.vm.runtime_dir) / ".libvirt-uploads";
        o.lock_timeout = opts.vm.lock_timeout;
        o.say = [this](std::string_view l) {
            say(std::string(l));
        };
        auto copy = co_await detail::ensure_pool_copy(*c, std::move(p), std::move(file), o);
        co_return fs::path(copy.second);
    }

    // A new raw volume `name` holding `bytes`; its path. A failed or
    // cancelled upload deletes the volume.
    asio::awaitable<fs::path> upload_volume(std::string name, std::string bytes) {
        auto* c = co_await connection();
        auto p = co_await pool();
        auto vol = co_await c->create_volume(p, detail::raw_volume_xml(name, bytes.size()));
        std::exception_ptr failure;
        try {
            co_await c->upload(vol, std::move(bytes));
        } catch (...) {
            failure = std::current_exception();
        }
        if (failure)
            co_await localvm::detail::undo_and_rethrow(
                failure, [c, &vol]() -> asio::awaitable<void> {
                    co_await detail::delete_released_volume(*c, vol, std::chrono::seconds(10));
                });
        co_return fs::path(co_await c->volume_path(vol));
    }

    // Replaces the seed volume with `iso` and returns its path.
    asio::awaitable<fs::path> upload_seed(std::string iso) {
        auto* c = co_await connection();
        if (auto old = co_await find_volume(seed_name()))
            co_await c->delete_volume(*old);
        co_return co_await upload_volume(seed_name(), std::move(iso));
    }

    // The UEFI variable store, the volume `<name>-vars.fd` of the pool:
    // made from the firmware's `vars_template` (a file on this host) at the
    // first firmware boot, then kept, as the QEMU backend keeps its
    // variables, until `remove`. A volume, not a file beside the overlay,
    // so that it works the same through a remote daemon.
    asio::awaitable<fs::path> vars_volume(const fs::path& vars_template) {
        auto* c = co_await connection();
        if (auto v = co_await find_volume(vars_name()))
            co_return fs::path(co_await c->volume_path(*v));
        say("making the UEFI variable store " + vars_name() + " from " + vars_template.string());
        co_return co_await upload_volume(vars_name(), sys::read_file(vars_template));
    }

    asio::awaitable<void> stop(domain_ref dom);
    asio::awaitable<void> stop_ladder(domain_ref dom, lifecycle_events& events);
    asio::awaitable<std::pair<fs::path, std::string>> pool_base(std::string name);
};

manager::manager(asio::any_io_executor executor, manager_options opts)
    : impl_(std::make_unique<impl>(std::move(executor), std::move(opts))) {}
manager::~manager() = default;
manager::manager(manager&&) noexcept = default;
manager& manager::operator=(manager&&) noexcept = default;

std::string manager::addr() const {
    return "10.0.2.2";
}

void manager::set_output(line_sink sink) {
    impl_->output = std::move(sink);
}

const qemu::layout& manager::files() const noexcept {
    return impl_->files;
}

// A base `volume:NAME` in the pool: its path and format, as the daemon
// reports them.
asio::awaitable<std::pair<fs::path, std::string>> manager::impl::pool_base(std::string name) {
    auto vol = co_await find_volume(name);
    if (!vol)
        throw_error(errc::not_found, "base volume " + name + " is not in pool " + opts.pool +
                                         " (" + opts.uri + ")");
    auto* c = co_await connection();
    std::string problem;
    auto facts = detail::parse_volume_xml(co_await c->volume_xml(*vol), problem);
    if (!facts)
        throw_error(errc::libvirt_error, "base volume " + name + ": " + problem);
    if (facts->format != "qcow2" && facts->format != "raw")
        throw_error(errc::unsupported, "base volume " + name + " is " + facts->format +
                                           ", not qcow2 or raw");
    if (facts->backing && !opts.vm.allow_base_backing_chain)
        throw_error(errc::unsupported, "base volume " + name + " has a backing file of its own (" +
                                           *facts->backing +
                                           "); set allow_base_backing_chain to build on it");
    co_return std::pair{fs::path(co_await c->volume_path(*vol)), facts->format};
}

asio::awaitable<void> manager::create(fs::path base_image) {
    impl& vm = *impl_;
    const auto capacity = qemu::detail::requested_disk_bytes(vm.opts.vm);
    constexpr std::string_view volume_prefix = "volume:";
    const bool in_pool = base_image.native().starts_with(volume_prefix);
    const auto volume_name = base_image.native().substr(in_pool ? volume_prefix.size() : 0);
    if (in_pool && volume_name.empty())
        throw_error(errc::invalid_argument, "base image volume: names no volume");
    if (!in_pool && !fs::exists(base_image))
        throw_error(errc::not_found, "base image " + base_image.string() + " does not exist");
    if (!in_pool)
        base_image = fs::absolute(base_image);
    auto lock = co_await vm.lock();
    auto existing = co_await vm.find_volume(vm.overlay_name());
    if (existing)
        throw_error(errc::already_exists, "VM " + vm.name() + " already exists (volume " +
                                              vm.overlay_name() + " in pool " + vm.opts.pool + ")");
    fs::path backing;
    std::string format;
    if (in_pool) {
        std::tie(backing, format) = co_await vm.pool_base(volume_name);
    } else {
        format = co_await qemu::detail::check_base(vm.opts.vm, base_image);
        // A remote daemon gets the base as a volume of the pool (reused by digest).
        backing = co_await vm.daemon_file(base_image);
    }
    auto xml = detail::overlay_volume_xml(vm.overlay_name(), backing, format, capacity);
    vm.say("creating volume " + vm.overlay_name() + " in pool " + vm.opts.pool + " on " +
           backing.string() + " (" + format + ")");
    auto p = co_await vm.pool();
    auto* c = co_await vm.connection();
    co_await c->create_volume(p, std::move(xml));
}

asio::awaitable<bool> manager::exists() {
    auto vol = co_await impl_->find_volume(impl_->overlay_name());
    co_return vol.has_value();
}

asio::awaitable<void> manager::start(start_options so) {
    impl& vm = *impl_;
    if (!so.networks.empty())
        throw_error(errc::unsupported, "the libvirt backend has no virtual networks yet");
    // The checks of the QEMU backend, before anything is touched.
    auto plan = qemu::detail::plan_start(vm.opts.vm, vm.files, so);
    auto overlay = co_await vm.find_volume(vm.overlay_name());
    if (!overlay)
        throw_error(errc::not_found, "VM " + vm.name() + " was not created (no volume " +
                                         vm.overlay_name() + " in pool " + vm.opts.pool + ")");
    auto lock = co_await vm.lock();
    overlay = co_await vm.find_volume(vm.overlay_name()); // again, under the lock
    if (!overlay)
        throw_error(errc::not_found, "VM " + vm.name() + " was not created (no volume " +
                                         vm.overlay_name() + " in pool " + vm.opts.pool + ")");
    auto running = co_await vm.active_domain();
    if (running) {
        auto pid = vm.local_pid();
        throw_error(errc::already_running,
                    "VM " + vm.name() + " is already running" +
                        (pid ? " (pid " + std::to_string(*pid) + ")" : std::string()));
    }
    if (vm.opts.vm.host_key == qemu::host_key_policy::pinned) {
        auto key = co_await qemu::detail::guest_host_key(vm.opts.vm, vm.files);
        qemu::detail::pin_host_key(plan, vm.opts.vm, so, key);
    }
    std::error_code ec;
    for (const auto& f : {vm.files.known_hosts, vm.files.pidfile, vm.files.console_log})
        fs::remove(f, ec);

    auto* c = co_await vm.connection();
    auto& launch = plan.launch;
    launch.disk = co_await c->volume_path(*overlay);
    auto iso = cloudinit::render_iso(cloudinit::seed_files(plan.seed));
    vm.say("uploading the seed (" + std::to_string(iso.size()) + " bytes) as volume " +
           vm.seed_name());
    launch.seed = co_await vm.upload_seed(std::move(iso));
    if (launch.uefi) {
        // A remote daemon reads the firmware from a pool copy, as the kernel.
        launch.uefi->code = co_await vm.daemon_file(launch.uefi->code);
        launch.uefi->vars = co_await vm.vars_volume(plan.vars_template);
    }
    launch.accel = vm.opts.vm.accel;
    if (launch.boot) {
        // A remote daemon reads the kernel and initrd from pool copies.
        launch.boot->kernel = co_await vm.daemon_file(launch.boot->kernel);
        if (!launch.boot->initrd.empty())
            launch.boot->initrd = co_await vm.daemon_file(launch.boot->initrd);
    }
    if (!vm.remote()) {
        // Paths on this host: a remote daemon would look for them on its own.
        launch.console_log = vm.files.console_log;
        launch.pidfile = vm.files.pidfile;
    }
    auto xml = detail::domain_xml(launch);

    vm.say("creating domain " + vm.name());
    // libvirt's error carries QEMU's stderr when QEMU refused to start:
    // the QEMU backend's process_failed.
    std::optional<domain_ref> created;
    std::string refused;
    std::exception_ptr lost; // cancelled, or the connection ended: it may run
    try {
        created = co_await c->create_xml(std::move(xml));
    } catch (const call_error& e) {
        refused = e.remote().message.value_or(e.what());
    } catch (...) {
        lost = std::current_exception();
    }
    if (lost) {
        // Best effort: a create the daemon finishes after this lookup
        // still runs (its reply is discarded).
        co_await localvm::detail::undo_and_rethrow(lost, [&vm, c]() -> asio::awaitable<void> {
            if (auto orphan = co_await vm.find_domain())
                co_await c->destroy(*orphan);
        });
    }
    if (!created)
        throw_error(errc::process_failed,
                    "VM " + vm.name() + ": libvirt did not start the domain: " + refused);
    auto dom = std::move(*created);
    // From here a failure (or cancellation) must not leave it running.
    std::exception_ptr failure;
    try {
        auto text = co_await vm.usernet(dom);
        auto bound = qemu::parse_usernet_ports(text, launch.ports);
        if (!bound)
            throw_error(errc::process_failed,
                        "VM " + vm.name() + ": QEMU did not report its port forwards:\n" + text);
        for (std::size_t i = 0; i < bound->size(); ++i)
            vm.say("forward " + launch.ports[i].host_address + ":" + std::to_string((*bound)[i]) +
                   " -> guest port " + std::to_string(launch.ports[i].guest_port));
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure)
        co_await localvm::detail::undo_and_rethrow(
            failure, [c, &dom]() -> asio::awaitable<void> { co_await c->destroy(dom); });
    if (auto pid = vm.local_pid())
        vm.say("running (pid " + std::to_string(*pid) + ")");
}

asio::awaitable<bool> manager::running() {
    auto dom = co_await impl_->active_domain();
    co_return dom.has_value();
}

asio::awaitable<std::optional<pid_t>> manager::pid() {
    auto dom = co_await impl_->active_domain();
    if (!dom)
        co_return std::nullopt;
    co_return impl_->local_pid();
}

asio::awaitable<std::vector<port_forward>> manager::ports() {
    co_return co_await impl_->bound_ports(co_await impl_->running_domain());
}

asio::awaitable<void> manager::wait_ready(milliseconds timeout) {
    impl& vm = *impl_;
    auto t = co_await vm.ssh_target();
    auto dom = co_await vm.running_domain();
    auto body = [&vm, &t, timeout, dom](impl::stop_hook stopped) -> asio::awaitable<void> {
        // The console is followed meanwhile (when no other client holds
        // it): its lines go to the output, its tail into a guest_died
        // diagnostic where this host has no console log.
        auto feed = co_await vm.open_console(dom);
        detail::console_scan seen(vm.console_echo());
        auto abort = [&vm, &feed, &seen, &stopped]() -> asio::awaitable<std::string> {
            if (feed)
                co_await localvm::detail::race(stopped(),
                                               detail::read_console(*feed, seen, nullptr, false));
            co_await stopped(); // the stream may end first
            co_return "domain " + vm.name() + " stopped while waiting for SSH; console:\n" +
                vm.console_tail(&seen);
        };
        co_await qemu::detail::wait_guest_ssh(
            vm.opts.vm, std::move(t), timeout, false, abort,
            [&vm](const std::string& l) { vm.say(l); }, {});
    };
    co_await vm.watch_stop(dom, body);
}

// On the console stream, so that it works over a remote connection; the
// history before the stream opened comes from the console log where this
// host has one (a local daemon).
asio::awaitable<std::string> manager::wait_for_console(std::string text, milliseconds timeout) {
    impl& vm = *impl_;
    auto dom = co_await vm.running_domain();
    const console::text_matcher matcher(std::move(text));
    std::string line;
    auto body = [&vm, &matcher, &line, timeout,
                 dom](impl::stop_hook stopped) -> asio::awaitable<void> {
        auto feed = co_await vm.open_console(dom);
        if (!feed) {
            // Another client holds the console: the log file alone, if any.
            if (!vm.local_log())
                throw_error(errc::busy, "the serial console of VM " + vm.name() +
                                            " is in use by another client");
            auto abort = [&vm, &stopped]() -> asio::awaitable<std::string> {
                co_await stopped();
                co_return "domain " + vm.name() + " stopped";
            };
            line = co_await console::wait_for_console(vm.files.console_log, matcher, timeout, abort);
            co_return;
        }
        // Opened before the history is read: nothing falls in between.
        if (vm.local_log()) {
            console::console_log history(vm.files.console_log);
            if (auto found = co_await console::detail::find_in_log(history, matcher, true)) {
                line = std::move(*found);
                co_return;
            }
        }
        detail::console_scan seen(vm.console_echo());
        auto what =
            "waiting for " + matcher.description() + " on the serial console of VM " + vm.name();
        auto with_tail = [&vm, &seen](std::string message) {
            auto tail = vm.console_tail(&seen);
            return message + (tail.empty() ? std::string("; the console showed nothing")
                                           : "; its last lines:\n" + tail);
        };
        asio::steady_timer deadline(co_await asio::this_coro::executor,
                                    localvm::detail::deadline_after(timeout)); // 0: none
        auto outcome =
            co_await localvm::detail::race(detail::read_console(*feed, seen, &matcher, true),
                                           deadline.async_wait(asio::use_awaitable), stopped());
        if (outcome.index() == 0 && std::get<0>(outcome)) {
            line = std::move(*std::get<0>(outcome));
            co_return;
        }
        if (outcome.index() == 1)
            throw_error(errc::timeout, with_tail(what + ": no match within " +
                                                 std::to_string(timeout.count()) + " ms"));
        if (outcome.index() == 0) {
            // The stream ended: the domain stopped, or a client took the
            // console by force.
            asio::steady_timer grace(co_await asio::this_coro::executor, std::chrono::seconds(5));
            auto end =
                co_await localvm::detail::race(stopped(), grace.async_wait(asio::use_awaitable));
            if (end.index() == 1)
                throw_error(errc::busy, with_tail(what + ": another client took the console"));
        }
        throw_error(errc::guest_died, with_tail(what + ": the domain stopped"));
    };
    co_await vm.watch_stop(dom, body);
    co_return line;
}

asio::awaitable<shell_result> manager::shell(std::string command, shell_options opts) {
    co_return co_await qemu::detail::guest_shell(co_await impl_->ssh_target(), std::move(command),
                                                 std::move(opts));
}

asio::awaitable<void> manager::console() {
    console::attach_options ao;
    ao.hint = console::attach_hint(impl_->name());
    co_await attach_console(std::move(ao));
}

asio::awaitable<console::attach_end> manager::attach_console(console::attach_options opts) {
    impl& vm = *impl_;
    auto dom = co_await vm.running_domain();
    console::attach_end how = console::attach_end::vm_closed;
    auto body = [&vm, &opts, &how, dom](impl::stop_hook stopped) -> asio::awaitable<void> {
        auto feed = co_await vm.open_console(dom);
        if (!feed)
            throw_error(errc::busy,
                        "the serial console of VM " + vm.name() + " is in use by another client");
        stream& s = *feed;
        console::byte_channel channel;
        channel.read = [&s]() -> asio::awaitable<std::optional<std::string>> {
            try {
                co_return co_await s.read();
            } catch (const call_error&) {
                co_return std::nullopt; // the daemon ended it: the domain stopped
            }
        };
        channel.write = [&s](std::string data) -> asio::awaitable<bool> {
            try {
                co_await s.write(std::move(data));
            } catch (const call_error&) {
                co_return false;
            }
            co_return true;
        };
        auto ended =
            co_await localvm::detail::race(console::attach(std::move(channel), opts), stopped());
        if (ended.index() == 0)
            how = std::get<0>(ended);
        s.abort(); // let go of the console at once
    };
    co_await vm.watch_stop(dom, body);
    co_return how;
}

asio::awaitable<void> manager::sync(fs::path from, std::string to, sync_options opts) {
    co_await qemu::detail::guest_sync(co_await impl_->ssh_target(), std::move(from), std::move(to),
                                      std::move(opts), impl_->output);
}

asio::awaitable<void> manager::stop() {
    impl& vm = *impl_;
    co_await vm.running_domain(); // not_running makes no directories
    auto lock = co_await vm.lock();
    auto dom = co_await vm.running_domain();
    co_await vm.stop(std::move(dom));
}

// Drives the QEMU backend's stop machine with libvirt's calls: powerdown is
// the ACPI shutdown, quit and SIGTERM a graceful destroy, SIGKILL a forced
// one, and QEMU's exit the domain's `stopped` lifecycle event.
asio::awaitable<void> manager::impl::stop(domain_ref dom) {
    auto* c = co_await connection();
    auto events = co_await c->subscribe_lifecycle(dom);
    // The ssh control master (a local daemon's guest: none through a jump
    // host) before the guest goes down, and one a `shell` made meanwhile
    // after, as the QEMU backend does.
    auto end_master = [this]() {
        return qemu::detail::end_guest_master(files, [this](const std::string& l) { say(l); });
    };
    std::exception_ptr failure;
    try {
        co_await end_master();
        co_await stop_ladder(dom, events);
        co_await end_master();
    } catch (...) {
        failure = std::current_exception();
    }
    co_await asio::this_coro::reset_cancellation_state();
    co_await close_events(events, failure);
}

asio::awaitable<void> manager::impl::stop_ladder(domain_ref dom, lifecycle_events& events) {
    auto* c = co_await connection();
    qemu::stop_options so = opts.vm.stop;
    so.agent_timeout = milliseconds(0); // no agent channel in the domain
    const pid_t pid = local_pid().value_or(0);
    qemu::detail::stop_machine machine(pid, so);
    using ek = qemu::detail::stop_event_kind;
    using k = qemu::detail::stop_action_kind;
    std::string failure;
    qemu::detail::stop_event ev{ek::start, {}};
    auto still = co_await active_domain();
    bool exited = !still;
    for (;;) {
        auto a = machine.resume(exited ? qemu::detail::stop_event{ek::exited, {}} : ev,
                                std::chrono::steady_clock::now());
        if (!a.message.empty())
            say(a.message);
        if (a.kind == k::done)
            break;
        if (a.kind == k::fail)
            throw_error(errc::process_failed, machine.diagnostic());
        // shutdown and destroy with the stage's deadline (a hung daemon
        // must not hold stop): the generic call, as the typed ones take none.
        auto domain_call = [&](remote_procedure proc, std::uint32_t flags) {
            domain_flags_args args;
            args.dom = dom;
            args.flags = flags;
            call_options co;
            // Every rung ends: a zero timeout means "at once", never no_deadline.
            co.timeout = std::max(milliseconds(1), std::chrono::ceil<milliseconds>(a.timeout));
            return c->call(remote_program, static_cast<std::int32_t>(proc), encode(args), co);
        };
        ev = {ek::waited, {}};
        // Each action's outcome; a daemon error may just mean it is gone.
        std::optional<std::int32_t> code;
        try {
            switch (a.kind) {
            case k::connect:
                ev.kind = ek::connected;
                break;
            case k::powerdown:
                co_await domain_call(remote_procedure::domain_shutdown_flags, shutdown_acpi);
                ev.kind = ek::replied;
                break;
            case k::agent_shutdown:
                failure = "no guest agent";
                ev = {ek::command_failed, failure};
                break;
            case k::quit:
                co_await domain_call(remote_procedure::domain_destroy_flags, destroy_graceful);
                ev.kind = ek::replied;
                break;
            case k::signal:
                co_await domain_call(remote_procedure::domain_destroy_flags,
                                     a.signal == SIGKILL ? 0u : destroy_graceful);
                [[fallthrough]];
            case k::wait: {
                auto deadline = std::chrono::steady_clock::now() + a.timeout;
                for (;;) {
                    auto left = deadline - std::chrono::steady_clock::now();
                    if (left <= std::chrono::steady_clock::duration::zero())
                        break;
                    auto e = co_await events.next(localvm::detail::time_left(deadline));
                    if (ended(e)) {
                        ev.kind = ek::exited;
                        break;
                    }
                }
                break;
            }
            case k::done:
            case k::fail:
                break;
            }
        } catch (const call_error& e) {
            code = e.libvirt_code();
            failure = e.what();
            ev = {ek::command_failed, failure};
        } catch (const localvm::error& e) {
            if (e.code() != errc::timeout)
                throw;
            if (a.kind != k::wait && a.kind != k::signal) {
                failure = e.what();
                ev = {ek::command_failed, failure};
            }
        }
        // The daemon is asked too when a wait passes without the event: a
        // lost event must not cost the whole ladder.
        if (ev.kind == ek::waited) {
            auto now_active = co_await active_domain();
            if (!now_active) {
                say("the domain has ended (no lifecycle event seen)");
                ev.kind = ek::exited;
            }
        }
        if (ev.kind == ek::command_failed ||
            (code && (*code == no_domain || *code == operation_invalid))) {
            auto now_active = co_await active_domain();
            exited = !now_active;
        }
    }
    say("stopped after " +
        std::to_string(std::chrono::duration_cast<milliseconds>(
                           machine.elapsed(std::chrono::steady_clock::now()))
                           .count()) +
        " ms");
}

asio::awaitable<void> manager::remove() {
    impl& vm = *impl_;
    auto lock = co_await vm.lock();
    if (auto dom = co_await vm.find_domain()) {
        auto running = co_await vm.active_domain();
        if (running)
            throw_error(errc::already_running, "VM " + vm.name() + " is running; stop it first");
        auto* c = co_await vm.connection();
        co_await c->undefine(*dom);
    }
    auto* c = co_await vm.connection();
    for (const auto& name : {vm.overlay_name(), vm.seed_name(), vm.vars_name()})
        if (auto vol = co_await vm.find_volume(name))
            co_await c->delete_volume(*vol);
    co_await qemu::detail::end_guest_master(vm.files, [&vm](const std::string& l) { vm.say(l); });
    // The lock made and checked both directories (nothing that is not ours
    // is deleted); the lock file goes with them.
    sys::remove_tree(vm.files.data);
    sys::remove_tree(vm.files.runtime);
    vm.say("removed");
}

} // namespace localvm::libvirt
