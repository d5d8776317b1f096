// Test VMs: boot one or more QEMU guests for a test (on this host, or
// through libvirt daemons, spread over a pool of hosts), drive them from a
// coroutine body with a hard deadline, and always clean them up.
#pragma once

#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/libvirt/manager.hpp>
#include <localvm/manager.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/options.hpp>
#include <localvm/testing/error.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace localvm::testing {

/// A guest image built by localvm's `test/guests/build` (or laid out like
/// one): a folder with an `env` file of KEY=value lines (KERNEL, INITRD,
/// CMDLINE for direct boot; DISK for a disk image).
struct guest_image {
    std::filesystem::path folder;              ///< Where the guest's files are.
    std::map<std::string, std::string> values; ///< The `env` file; file names made absolute.

    /// The value of `key`, or "" when absent.
    std::string operator[](const std::string& key) const;
    /// Direct boot {KERNEL, INITRD, CMDLINE + " " + extra_cmdline}.
    /// Throws `errc::not_found` when the guest has no KERNEL.
    direct_boot boot(const std::string& extra_cmdline = {}) const;

    /// Loads guest `name` from `$LOCALVM_GUEST_CACHE`, else
    /// `~/.cache/localvm/guests`. Throws `errc::not_found` naming the missing
    /// file and the command that builds it.
    static guest_image load(const std::string& name);
};

/// One VM of a `vm_set`: what it is and how it boots.
struct vm_spec {
    /// VM name, unique in its set (see `qemu::options::name` for the rules).
    std::string name;
    /// Backing image of the disk overlay; empty: a blank 64 MiB qcow2 (enough
    /// for direct-boot guests that live in their initramfs).
    std::filesystem::path base_image;
    /// When set, the VM is a clone of this snapshot instead of a fresh disk
    /// on `base_image`: `create_from_snapshot`, and its start restores the
    /// saved machine in about a second instead of booting (see
    /// `qemu::manager::create_from_snapshot`). Save one in an earlier run of
    /// the set with `set[NAME].manager().snapshot(SNAPSHOT)`; give the clone
    /// the same `start` as the VM it was saved from. The set's teardown
    /// removes the snapshots with its directory. Default: none.
    std::string snapshot;
    /// How it starts. An empty `ssh_authorized_key` gets the set's key; no
    /// port forwards get SSH on a free host port (guest port 22). The
    /// virtual networks in `start.networks` are the set's: `run` creates
    /// those missing and reserves every address before it boots any VM (so
    /// each guest's /etc/hosts names all its peers), and `teardown` removes
    /// them after the VMs, whatever happened.
    start_options start;
    /// Backend options. The set fills in `name`, `data_dir`, `runtime_dir`
    /// and `ssh_identity_file` when empty; defaults here are TCG and
    /// restricted user networking, what tests want.
    qemu::options options = test_options();
    /// The backend: empty (the default) is the QEMU backend on this host; a
    /// libvirt URI runs the VM through that daemon (`libvirt::manager`,
    /// with `options` as its `vm`), its volumes in `pool`. A set given
    /// hosts (`vm_set::set_hosts`) chooses one for each VM that names none.
    /// Through libvirt there are no snapshots and no virtual networks
    /// (`errc::unsupported`).
    std::string connect;
    /// The libvirt storage pool of the VM's volumes, with `connect`.
    /// Default "default".
    std::string pool = "default";
    /// How long `wait_ready` may take at boot; 0: do not wait for SSH.
    std::chrono::milliseconds ready_timeout{std::chrono::minutes(3)};

    /// `qemu::options` with accel = tcg and net = restricted.
    static qemu::options test_options();
};

/// A running VM, as a test body sees it. Every call fails with
/// `localvm::error`; the `expect_*` helpers fail with `kit_errc::check_failed`
/// naming the command and showing what the guest said.
class vm {
public:
    /// The VM's name in its set.
    const std::string& name() const noexcept { return name_; }
    /// Where it runs: its libvirt URI, or "" for the QEMU backend.
    const std::string& host() const noexcept { return host_; }
    /// The backend, whichever it is, for anything the helpers do not cover.
    localvm::manager& backend() noexcept { return *manager_; }
    /// The QEMU backend, for what only it has (snapshots, networks, the
    /// monitor). Throws `errc::unsupported` for a VM run through libvirt.
    qemu::manager& manager();

    /// Runs `command` over SSH; throws `kit_errc::check_failed` unless it exits
    /// with `status`. Returns the result (output = stdout and stderr).
    boost::asio::awaitable<shell_result> expect_status(std::string command, int status = 0,
                                                       std::chrono::milliseconds timeout =
                                                           std::chrono::minutes(2));
    /// Runs `command` over SSH expecting exit status 0, and returns its
    /// stdout (stderr goes to the failure message only).
    boost::asio::awaitable<std::string> output(std::string command,
                                               std::chrono::milliseconds timeout =
                                                   std::chrono::minutes(2));
    /// Runs `command` expecting exit status 0 and stdout equal to
    /// `expected`; throws `kit_errc::check_failed` showing both otherwise.
    boost::asio::awaitable<void> expect_output(std::string command, std::string expected);
    /// Waits for a console line matching `text` (see `qemu::manager::
    /// wait_for_console`: `errc::timeout` with the console tail on failure).
    boost::asio::awaitable<std::string> wait_for_console(std::string text,
                                                         std::chrono::milliseconds timeout);
    /// The host port forwarded to `guest_port`. Throws `errc::not_found`
    /// when the VM has no forward for it.
    boost::asio::awaitable<std::uint16_t> host_port(std::uint16_t guest_port);
    /// Waits until a guest service accepts TCP connections on `guest_port`
    /// through its forward, and returns the host port. QEMU's forwarder
    /// accepts every connection at once and closes it when the guest
    /// refuses, so a connection counts once it sends data or stays open for
    /// `settle`. Retries with a capped backoff; `errc::timeout` after
    /// `timeout`, `errc::guest_died` when QEMU exits meanwhile.
    boost::asio::awaitable<std::uint16_t> wait_for_port(
        std::uint16_t guest_port, std::chrono::milliseconds timeout,
        std::chrono::milliseconds settle = std::chrono::milliseconds(300));
    /// Copies `local` to `remote` with rsync over SSH (`manager::sync`).
    /// (GCC 12 miscompiles a coroutine's aggregate parameter defaulted with
    /// `= {}`: it frees garbage. Default such parameters with `= T()`.)
    boost::asio::awaitable<void> copy_in(std::filesystem::path local, std::string remote,
                                         sync_options opts = sync_options());
    /// Copies guest `remote` to host `local` with rsync over SSH
    /// (`manager::sync` with `sync_direction::from_guest`; `opts.direction`
    /// is set here). `errc::not_found` when `remote` does not exist.
    boost::asio::awaitable<void> copy_out(std::string remote, std::filesystem::path local,
                                          sync_options opts = sync_options());

    /// The last `lines` lines of its serial console and of QEMU's stderr,
    /// under headers naming the VM; what a failed test shows.
    std::string report(std::size_t lines = 30) const;

private:
    friend class vm_set;
    boost::asio::awaitable<port_forward> forward_to(std::uint16_t guest_port);
    std::string console_tail(std::size_t lines) const;
    const qemu::layout& files() const; // the backend's, whichever it is
    std::string name_;
    std::string host_;
    // Owned by the running vm_set::run; exactly one of the two is set.
    localvm::manager* manager_ = nullptr;
    qemu::manager* qemu_ = nullptr;
    libvirt::manager* libvirt_ = nullptr;
};

/// A libvirt host of a `vm_set`'s pool.
struct pool_host {
    std::string uri;              ///< The daemon, e.g. "qemu+ssh://root@h/system?keyfile=K".
    std::string pool = "default"; ///< The storage pool of the VMs' volumes there.
};

/// A set of test VMs that live in a private temporary directory with their
/// own SSH key pair. `run` boots whatever is not running yet (concurrently,
/// on one io_context), then runs the test body with a hard deadline; the
/// destructor (or `teardown`) stops and deletes every VM and the directory,
/// whatever happened before: exception, failed check or deadline. Use one
/// per test case (a local or a Boost.Test fixture), or share one across a
/// suite (see localvm/testing/boost.hpp).
class vm_set {
public:
    /// Makes the temporary directory (under $TMPDIR, else /tmp) and an
    /// ed25519 key pair in it with `ssh-keygen`. Throws `localvm::error`.
    vm_set();
    /// Stops and deletes the VMs (see `teardown`); never throws.
    ~vm_set();
    vm_set(const vm_set&) = delete;
    vm_set& operator=(const vm_set&) = delete;

    /// Adds a VM to boot at the next `run`. Throws `errc::invalid_argument`
    /// for a duplicate or invalid name, and for an address another VM of the
    /// set has on the same network.
    void add(vm_spec spec);

    /// Boots the VMs that are not running (create, start, wait_ready; all at
    /// once), then awaits `body`, all on a fresh io_context within
    /// `deadline` (boot included; see `run_coroutine`). Any failure is
    /// rethrown as `localvm::error` (same code; `kit_errc::check_failed` for
    /// other exceptions) with its message followed by `report()`. Call it as
    /// often as needed: VMs stay up between runs.
    void run(std::function<boost::asio::awaitable<void>(vm_set&)> body,
             std::chrono::milliseconds deadline = std::chrono::minutes(5),
             const std::string& what = "VM test body");

    /// Stops (quickly: no ACPI wait) and deletes the VM named `name` and
    /// takes it out of the set: a suite that gives each test a fresh clone
    /// discards it when the test ends. Valid inside `run`'s body. Throws
    /// `errc::not_found` for an unknown name or outside `run`, and what
    /// `stop` and `remove` throw.
    boost::asio::awaitable<void> discard(std::string name);

    /// Outside `run`: stops (quickly: no ACPI wait) and deletes the VM named
    /// `name` and takes it out of the set, killing its QEMU when that fails
    /// (as `teardown` does for each VM), so that a later `run` does not boot
    /// it again. Throws `errc::not_found` for an unknown name and
    /// `errc::invalid_argument` inside `run` (use `discard` there); returns
    /// what went wrong deleting it (empty when all went well).
    std::string remove(const std::string& name);

    /// The VM named `name`, valid inside `run`'s body. Throws
    /// `errc::not_found` for an unknown name or outside `run`.
    vm& operator[](const std::string& name);
    /// Names of the VMs, in the order they were added.
    std::vector<std::string> names() const;

    /// Spreads the set over libvirt hosts: at each `run`, every VM not
    /// placed yet that names no `vm_spec::connect` is placed on the host
    /// with the most free capacity (`place`: the free memory and CPUs its
    /// daemon reports, less what this set placed there before), then all
    /// boot at once, each on its host. A VM stays where it was placed; the
    /// teardown stops and removes each VM on its host. Call before `run`.
    /// Throws `errc::invalid_argument` for a host whose URI is not a
    /// libvirt URI. `run` throws `errc::busy` when a VM fits on no host.
    void set_hosts(std::vector<pool_host> hosts);

    /// Every VM's `report`, as shown when a run fails.
    std::string report(std::size_t lines = 30) const;
    /// Stops (quickly: no ACPI wait) and deletes every VM of the set, and
    /// any other VM whose runtime directory is under `root()/run`; kills any
    /// QEMU still alive; then removes every virtual network under
    /// `root()/data` (and the set's VMs' networks), killing a switch that
    /// outlives that; removes the directory. Idempotent; never throws; returns
    /// what went wrong (empty when all went well).
    std::string teardown();

    /// Gets `report()` after a run that threw nothing when `failed_check`
    /// says the test failed anyway, and teardown problems; default none.
    std::function<void(const std::string&)> on_failure;
    /// Asked after a run that threw nothing whether the test failed anyway
    /// (e.g. a failed non-fatal Boost.Test check). Default none.
    std::function<bool()> failed_check;

    /// The temporary directory.
    const std::filesystem::path& root() const noexcept { return root_; }
    /// The private key the VMs accept (path contains a space on purpose).
    const std::filesystem::path& key() const noexcept { return key_; }
    /// The matching public key line.
    const std::string& public_key() const noexcept { return public_key_; }

private:
    struct member {
        vm_spec spec;
        vm handle;
        bool booted = false;
    };
    boost::asio::awaitable<void> place_members();
    boost::asio::awaitable<void> boot(member& m);
    boost::asio::awaitable<void> prepare_networks();
    std::filesystem::path blank_base();
    std::filesystem::path root_, key_;
    std::string public_key_;
    std::vector<std::unique_ptr<member>> members_;
    std::vector<pool_host> hosts_;
    bool in_run_ = false;
    bool torn_down_ = false;
};

} // namespace localvm::testing
