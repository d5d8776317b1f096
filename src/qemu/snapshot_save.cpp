// Saving a running VM as a snapshot, making clones of it, and the restore
// steps of a clone's start. The record and the directory are snapshot.cpp's.
#include "snapshot_files.hpp"

#include "guest_ssh.hpp"
#include "manager_impl.hpp"
#include "sys/file.hpp"

#include "lock.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include "sys/secure_dir.hpp"
#include "watch.hpp"

#include <localvm/atomic_file.hpp>
#include <localvm/error.hpp>
#include <localvm/image/digest.hpp>
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qemu/state.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/qmp/migration.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>

#include <fstream>


#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm::qemu::detail {
namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

// Files a clone takes along besides its overlay: they are part of the
// machine the guest knows (its seed disk, its firmware variables, the host
// key its sshd presents).
constexpr const char* copied_files[] = {"seed.iso", "efi-vars.fd", "ssh_host_ed25519_key",
                                        "ssh_host_ed25519_key.pub"};

std::string version_text(const qmp::version& v) {
    auto s = std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.micro);
    if (!v.package.empty())
        s += " (" + v.package + ")";
    return s;
}

// The QEMU command line of a running pid, as it was given.
std::vector<std::string> proc_argv(pid_t pid) {
    auto text = sys::read_file("/proc/" + std::to_string(pid) + "/cmdline");
    std::vector<std::string> argv;
    std::size_t at = 0;
    while (at < text.size()) {
        auto end = text.find('\0', at);
        if (end == std::string::npos)
            end = text.size();
        argv.push_back(text.substr(at, end - at));
        at = end + 1;
    }
    return argv;
}

void copy_into(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    if (ec)
        throw_error(errc::io_error,
                    "cannot copy " + from.string() + " to " + to.string() + ": " + ec.message());
}

fs::path origin_file(const layout& files) { return files.data / "origin.json"; }

// The VM's login key when it is the VM's own (a file in its data
// directory, as the CLI keeps one per VM); empty otherwise. The guest
// authorises only its public half, so a clone needs it to be reached.
fs::path own_identity(const options& opts, const layout& files) {
    const auto& id = opts.ssh_identity_file;
    if (id.empty())
        return {};
    auto p = fs::absolute(id).lexically_normal();
    if (p.parent_path() != fs::absolute(files.data).lexically_normal())
        return {};
    return p;
}

// Where a snapshot keeps that key pair.
constexpr const char* identity_copy = "identity";

// The versioned name of `machine` ("q35" -> "pc-q35-7.2") from query-machines.
asio::awaitable<std::string> pin_machine(qmp::client& c, const std::string& machine) {
    auto v = co_await c.execute("query-machines");
    if (v.is_array())
        for (const auto& m : v.get_array()) {
            const auto* o = m.if_object();
            const auto* name = o ? o->if_contains("name") : nullptr;
            const auto* alias = o ? o->if_contains("alias") : nullptr;
            if (!name || !name->is_string())
                continue;
            if (name->get_string() == machine ||
                (alias && alias->is_string() && alias->get_string() == machine))
                co_return std::string(name->get_string());
        }
    throw_error(errc::protocol_error, "query-machines does not list machine type " + machine);
}

} // namespace

std::vector<std::string> live_clones(const fs::path& snapshot_dir) {
    std::vector<std::string> out;
    std::vector<fs::path> stale;
    std::error_code ec;
    for (fs::directory_iterator it(snapshot_dir / "clones", ec), end; !ec && it != end;
         it.increment(ec)) {
        fs::path data = sys::read_file(it->path());
        if (!data.empty() && fs::exists(data / "disk.qcow2"))
            out.push_back(it->path().filename().string());
        else
            stale.push_back(it->path());
    }
    for (const auto& s : stale)
        fs::remove(s, ec);
    std::sort(out.begin(), out.end());
    return out;
}

std::string file_sha256(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        return {};
    image::hasher h(image::digest_algorithm::sha256);
    std::string buf(1 << 20, '\0');
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
        h.update(std::string_view(buf.data(), static_cast<std::size_t>(in.gcount())));
    if (in.bad())
        return {};
    return h.finish().hex;
}

namespace {

// Size and mtime of `p` from one stat; nullopt when it cannot be looked at.
std::optional<std::pair<std::uint64_t, std::int64_t>> size_and_mtime(const fs::path& p) {
    struct ::stat st {};
    if (::stat(p.c_str(), &st) != 0)
        return std::nullopt;
    return std::pair{static_cast<std::uint64_t>(st.st_size),
                     static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                         st.st_mtim.tv_nsec};
}

} // namespace

file_digest digest_file(const fs::path& p) {
    file_digest d;
    d.path = p;
    auto before = size_and_mtime(p);
    d.sha256 = file_sha256(p);
    // A file written while it was read gets no shortcut at the restore.
    if (before && before == size_and_mtime(p)) {
        d.size = before->first;
        d.mtime_ns = before->second;
    }
    return d;
}

std::string digest_now(const file_digest& recorded) {
    auto now = size_and_mtime(recorded.path);
    if (!now)
        return {};
    if (recorded.mtime_ns != 0 && now->first == recorded.size && now->second == recorded.mtime_ns)
        return recorded.sha256;
    return file_sha256(recorded.path);
}

std::optional<restore_source> read_origin(const layout& files) {
    auto path = origin_file(files);
    if (!fs::exists(path))
        return std::nullopt;
    json::error_code jec;
    auto v = json::parse(sys::read_file(path), jec);
    const auto* o = v.if_object();
    const auto* name = o ? o->if_contains("snapshot") : nullptr;
    const auto* dir = o ? o->if_contains("dir") : nullptr;
    if (jec || !name || !name->is_string() || !dir || !dir->is_string())
        throw_error(errc::protocol_error, "damaged clone record " + path.string());
    restore_source r;
    r.dir = std::string(dir->get_string());
    auto record = r.dir / "snapshot.json";
    if (!fs::exists(record))
        throw_error(errc::not_found, "the snapshot this VM was cloned from (" +
                                         std::string(name->get_string()) + ", " + r.dir.string() +
                                         ") is gone");
    boost::system::error_code ec;
    auto s = parse_snapshot(sys::read_file(record), ec);
    if (!s)
        throw_error(errc::protocol_error, "damaged snapshot record " + record.string());
    r.snap = std::move(*s);
    r.snap.dir = r.dir;
    const auto* restored = o->if_contains("restored");
    r.restored = restored && restored->is_bool() && restored->get_bool();
    return r;
}

void mark_restored(const layout& files) {
    auto path = origin_file(files);
    json::error_code jec;
    auto v = json::parse(sys::read_file(path), jec);
    if (jec || !v.is_object())
        throw_error(errc::protocol_error, "damaged clone record " + path.string());
    v.get_object()["restored"] = true;
    write_file_atomic(path, json::serialize(v) + "\n", fs::perms(0600));
}

bool is_clone(const layout& files) noexcept {
    std::error_code ec;
    return fs::exists(origin_file(files), ec);
}

void check_restore(const restore_source& from, unsigned cpus, std::uint64_t memory_mib,
                   const std::optional<direct_boot>& boot) {
    auto why = restore_mismatch(from.snap, cpus, memory_mib, boot, digest_now);
    if (!why.empty())
        throw_error(errc::unsupported,
                    "cannot restore snapshot " + from.snap.name + ": " + why);
}

void apply_restore(launch_plan& plan, const restore_source& from) {
    plan.machine = from.snap.machine;
    plan.incoming = true;
    plan.accel = from.snap.accel;
    plan.boot = from.snap.boot;
    if (!from.snap.boot && plan.uefi)
        plan.uefi->code = from.snap.firmware_code;
}

asio::awaitable<void> load_state(qmp::client& c, const layout& files, milliseconds timeout) {
    auto from = read_origin(files);
    if (!from)
        throw_error(errc::invalid_argument, "VM at " + files.data.string() + " is no clone");
    auto running = version_text(c.greeting().qemu);
    if (running != from->snap.qemu_version)
        throw_error(errc::unsupported, "cannot restore snapshot " + from->snap.name +
                                           ": it was saved by QEMU " + from->snap.qemu_version +
                                           ", this is QEMU " + running);
    auto state = from->dir / "state.mig";
    sys::unique_fd fd(::open(state.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        throw_error(errc::io_error,
                    "cannot open " + state.string() + ": " + sys::errno_text(errno));
    qmp::migration_options mo;
    mo.timeout = timeout;
    co_await qmp::migrate_from_fd(c, fd.get(), mo);
}

void forget_clone(const options& opts, const layout& files) {
    try {
        if (auto from = read_origin(files)) {
            std::error_code ec;
            fs::remove(from->dir / "clones" / opts.name, ec);
        }
    } catch (const localvm::error&) {
        // The snapshot is gone or its record damaged: nothing to unregister.
    }
}

} // namespace localvm::qemu::detail

namespace localvm::qemu {
using namespace detail;

asio::awaitable<snapshot_info> manager::impl::save_snapshot(std::string name,
                                                           snapshot_options so) {
    impl& vm = *this;
    const options& opts = vm.opts;
    const layout& files = vm.files;
    if (auto why = check_name(name); !why.empty())
        throw_error(errc::invalid_argument, "snapshot name: " + why);
    const auto root = snapshot_root(opts);
    const auto final_dir = root / name;
    if (!fs::exists(files.runtime))
        throw_error(errc::not_running, "VM " + opts.name + " is not running");
    vm.ensure_dirs();
    auto held = co_await vm.lock();
    const pid_t owner = vm.running_pid();
    if (fs::exists(final_dir))
        throw_error(errc::already_exists, "snapshot " + name + " already exists (" +
                                              final_dir.string() + ")");

    snapshot_info info;
    info.name = name;
    info.source_vm = opts.name;
    info.architecture = opts.architecture;
    if (auto m = machine_from_argv(proc_argv(owner), info); !m.empty())
        throw_error(errc::protocol_error, "VM " + opts.name + ": " + m);
    if (auto st = vm.read_state())
        info.ports = st->ports;
    for (auto& p : info.ports)
        p.host_port = 0; // a clone binds its own
    // Digests before the pause, so the guest stops no longer than it must.
    std::vector<fs::path> inputs;
    if (info.boot) {
        inputs.push_back(info.boot->kernel);
        if (!info.boot->initrd.empty())
            inputs.push_back(info.boot->initrd);
    } else if (!info.firmware_code.empty()) {
        inputs.push_back(info.firmware_code);
    }
    for (const auto& p : inputs) {
        auto d = digest_file(p);
        if (d.sha256.empty())
            throw_error(errc::io_error, "cannot read " + p.string() + " to record its digest");
        info.files.push_back(std::move(d));
    }

    // The ssh control master goes before the guest is saved: no clone gets
    // a session whose client is not there (each clone's guest reads the
    // goodbye that reached it before the pause, and ends that session).
    co_await end_guest_master(files, [&vm](const std::string& l) { vm.say(l); });

    auto c = co_await vm.monitor(std::chrono::seconds(10));
    info.qemu_version = version_text(c.greeting().qemu);
    info.machine = co_await pin_machine(c, info.machine);

    // Everything is made under a temporary name and renamed whole: a failed
    // or cancelled save leaves no partial snapshot.
    sys::ensure_private_dir(root.parent_path(), root, "snapshot directory");
    const auto tmp = root / (".saving-" + name + "-" + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directory(tmp, ec);
    if (ec)
        throw_error(errc::io_error, "cannot make " + tmp.string() + ": " + ec.message());
    fs::permissions(tmp, fs::perms::owner_all, ec);
    const auto state_file = tmp / "state.mig";
    sys::unique_fd out(::open(state_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out) {
        fs::remove_all(tmp, ec);
        throw_error(errc::io_error,
                    "cannot create " + state_file.string() + ": " + sys::errno_text(errno));
    }

    const auto status = co_await c.query_status();
    const bool was_running = status.running;
    const auto paused_at = std::chrono::steady_clock::now();
    std::exception_ptr failure;
    try {
        if (was_running)
            co_await c.stop();
        qmp::migration_options mo;
        mo.timeout = so.timeout;
        co_await qmp::migrate_to_fd(c, out.get(), mo);
        if (::fsync(out.get()) != 0)
            throw_error(errc::io_error,
                        "cannot sync " + state_file.string() + ": " + sys::errno_text(errno));
        out.reset();
        // QEMU has flushed and released the disk (a completed migration
        // inactivates it until cont): the overlay is consistent now.
        copy_into(files.disk, tmp / "disk.qcow2");
        for (const char* f : copied_files)
            if (fs::exists(files.data / f))
                copy_into(files.data / f, tmp / f);
        if (auto id = own_identity(opts, files); !id.empty() && fs::exists(id)) {
            copy_into(id, tmp / identity_copy);
            if (fs::exists(id.string() + ".pub"))
                copy_into(id.string() + ".pub", tmp / (std::string(identity_copy) + ".pub"));
        }
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        // The VM goes on as it was, whatever failed (cancellation too).
        co_await asio::this_coro::reset_cancellation_state();
        if (was_running) {
            try {
                co_await c.cont();
            } catch (const std::exception& e) {
                vm.say(std::string("cannot resume after the failed save: ") + e.what());
            }
        }
        out.reset();
        fs::remove_all(tmp, ec);
        std::rethrow_exception(failure);
    }
    if (so.then == after_save::resume && was_running)
        co_await c.cont();
    info.save_ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() -
                                                            paused_at)
                       .count();
    if (so.then == after_save::stop) {
        auto st = vm.read_state().value_or(vm_state{});
        st.stopping = true;
        vm.write_state(st);
        co_await c.quit();
        auto gone = co_await process::wait_exit(owner, milliseconds(10000));
        if (!gone)
            vm.say("QEMU did not exit within 10 s of quit after the save");
    }
    c.close();

    info.created_at = unix_now();
    info.state_bytes = fs::file_size(state_file);
    info.disk_bytes = fs::file_size(tmp / "disk.qcow2");
    {
        // The frozen layer's backing file, for the record.
        process::options pi;
        pi.argv = {opts.qemu_img.string(), "info", "--output=json", (tmp / "disk.qcow2").string()};
        pi.timeout = std::chrono::seconds(30);
        auto r = co_await process::run_checked(pi);
        json::error_code jec;
        auto v = json::parse(r.out, jec);
        if (const auto* o = v.if_object())
            if (const auto* b = o->if_contains("full-backing-filename"); b && b->is_string())
                info.base_image = std::string(b->get_string());
    }
    try {
        write_file_atomic(tmp / "snapshot.json", render_snapshot(info), fs::perms(0600));
        fs::permissions(state_file, fs::perms::owner_read);
        fs::permissions(tmp / "disk.qcow2", fs::perms::owner_read);
        sys::sync_directory(tmp);
        fs::rename(tmp, final_dir);
        sys::sync_directory(root);
    } catch (const std::exception& e) {
        fs::remove_all(tmp, ec);
        throw_error(errc::io_error, "cannot record snapshot " + name + ": " + e.what());
    }
    info.dir = final_dir;
    vm.say("saved snapshot " + name + " (" +
            std::to_string(info.state_bytes >> 20) + " MiB state, " +
            std::to_string(info.disk_bytes >> 20) + " MiB disk layer; guest paused " +
            std::to_string(info.save_ms) + " ms)");
    co_return info;
}

asio::awaitable<void> manager::impl::create_clone(std::string snapshot) {
    impl& vm = *this;
    const options& opts = vm.opts;
    const layout& files = vm.files;
    auto info = inspect_snapshot(opts, snapshot);
    vm.ensure_dirs();
    auto held = co_await vm.lock();
    if (fs::exists(files.disk))
        throw_error(errc::already_exists,
                    "VM " + opts.name + " already exists (" + files.disk.string() + ")");
    const auto registration = info.dir / "clones" / opts.name;
    const auto tmp_disk = fs::path(files.disk.string() + ".tmp-clone");
    // The source's own login key, for a clone that keeps its own too and
    // has none yet (a key already there is the caller's and stays).
    auto id = own_identity(opts, files);
    const auto id_from = info.dir / identity_copy;
    const bool take_identity = !id.empty() && fs::exists(id_from) && !fs::exists(id);
    std::error_code ec;
    try {
        fs::create_directories(info.dir / "clones");
        write_file_atomic(registration, files.data.string(), fs::perms(0600));
        for (const char* f : copied_files)
            if (fs::exists(info.dir / f)) {
                copy_into(info.dir / f, files.data / f);
                fs::permissions(files.data / f, fs::perms::owner_read | fs::perms::owner_write);
            }
        if (take_identity) {
            copy_into(id_from, id);
            fs::permissions(id, fs::perms::owner_read | fs::perms::owner_write);
            if (fs::exists(id_from.string() + ".pub"))
                copy_into(id_from.string() + ".pub", id.string() + ".pub");
        }
        json::object origin{{"snapshot", snapshot}, {"dir", info.dir.string()}};
        write_file_atomic(origin_file(files), json::serialize(origin) + "\n", fs::perms(0600));
        fs::remove(tmp_disk, ec);
        process::options mk;
        mk.argv = {opts.qemu_img.string(), "create", "-q", "-f", "qcow2", "-F", "qcow2",
                   "-b", (info.dir / "disk.qcow2").string(), tmp_disk.string()};
        mk.timeout = std::chrono::seconds(30);
        co_await process::run_checked(mk);
        fs::permissions(tmp_disk, fs::perms::owner_read | fs::perms::owner_write);
        fs::rename(tmp_disk, files.disk);
    } catch (...) {
        fs::remove(tmp_disk, ec);
        fs::remove(origin_file(files), ec);
        for (const char* f : copied_files)
            fs::remove(files.data / f, ec);
        if (take_identity) {
            fs::remove(id, ec);
            fs::remove(id.string() + ".pub", ec);
        }
        fs::remove(registration, ec);
        throw;
    }
    vm.say("created from snapshot " + snapshot);
}

} // namespace localvm::qemu
