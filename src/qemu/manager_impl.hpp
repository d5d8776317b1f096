// The private side of qemu::manager, its members spread over files by
// concern: manager.cpp (the lifecycle calls, orchestration), vm_files.cpp
// (the VM's files: state, logs, runtime clean-up), bring_up.cpp (spawn,
// QMP, cont, the accelerator fallback), stop.cpp (driving stop_machine).
#pragma once

#include "guest_clock.hpp"
#include "lock.hpp"

#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/ssh/command.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace localvm::qemu {

namespace detail {
/// Now, in seconds since the epoch (the state file's times).
std::int64_t unix_now();
} // namespace detail

/// Whether `settle_state` writes what it settled back to the state file.
enum class state_record { in_memory, persist };

/// What `clean_runtime` removes besides sockets, pid and exit-status files.
enum class runtime_logs { keep, remove };

/// Whether bring-up watches the boot for KVM hanging (`accel_choice::watch_boot`).
enum class boot_watch { none, kvm_watchdog };

/// How a bring-up ended without throwing.
enum class bring_up_end {
    running, ///< QEMU runs the guest.
    silent,  ///< The KVM watchdog saw no console output: KVM hangs here.
};

struct manager::impl {
    impl(boost::asio::any_io_executor executor, options opts);

    boost::asio::any_io_executor executor;
    options opts;
    layout files;
    line_sink output;
    stage_sink stages;
    std::uint64_t qemu_log_forwarded = 0; // bytes of qemu.log already said

    // Messages (vm_files.cpp).
    void say(const std::string& line) const;
    void stage(boot_stage s, const std::string& detail) const;
    // QEMU's stderr goes to qemu.log; what it wrote since the last call goes
    // to the output sink too.
    void forward_qemu_log();

    // The VM's files (vm_files.cpp).
    void ensure_dirs() const;
    boost::asio::awaitable<detail::vm_lock> lock();
    pid_t running_pid() const; // throws errc::not_running
    // The state of the running VM; throws errc::not_running when it does not
    // run or has no state file. Call under the lock to change it.
    vm_state running_state() const;
    // A QMP connection to the running VM's monitor (within `connect_timeout`).
    boost::asio::awaitable<qmp::client> monitor(std::chrono::milliseconds connect_timeout) const;
    std::optional<vm_state> read_state() const;
    void write_state(const vm_state& s);
    std::optional<vm_state> settle_state(state_record record);
    void clean_runtime(runtime_logs logs);
    std::string qemu_log_tail(std::size_t lines) const;
    std::string console_tail(std::size_t lines) const;
    std::string console_diagnosis() const;
    void prepare_vars_store(const std::filesystem::path& vars_template);
    boost::asio::awaitable<cloudinit::ssh_host_key> host_key();
    ssh::target ssh_target() const;

    // manager::start up to the guest running (manager.cpp); a restored
    // clone's clock is left to set (`set_clock`), the VM lock released.
    boost::asio::awaitable<std::optional<detail::pending_clock>> start(start_options so);
    // Bring-up (bring_up.cpp): spawns QEMU for `plan` until it runs, falling
    // back from KVM to TCG; the state file records `nics` too. A failure
    // restores `previous` and throws. A restore returns its clock to set.
    boost::asio::awaitable<std::optional<detail::pending_clock>>
    launch(launch_plan plan, std::vector<nic_state> nics, const std::optional<vm_state>& previous);
    // One attempt: the state file gets `record` (what launch knows: start
    // time, NICs, a fallback's reason) with pid, accelerator and bound ports;
    // a restore's clock to set goes to `clock`.
    boost::asio::awaitable<bring_up_end> bring_up(pid_t pid, const launch_plan& plan,
                                                  boot_watch watch, vm_state record,
                                                  std::optional<detail::pending_clock>& clock);
    // Sets a restored guest's clock (guest_clock.hpp), says how and reports
    // `boot_stage::guest_clock`; never throws but for cancellation.
    boost::asio::awaitable<void> set_clock(detail::pending_clock clock);

    // Stop (stop.cpp): escalates until QEMU `pid` is gone.
    boost::asio::awaitable<void> stop(pid_t pid);

    // Snapshots (snapshot_save.cpp): manager::snapshot and
    // manager::create_from_snapshot.
    boost::asio::awaitable<snapshot_info> save_snapshot(std::string name, snapshot_options so);
    boost::asio::awaitable<void> create_clone(std::string snapshot);
};

} // namespace localvm::qemu
