// QEMU's migration over QMP: a machine's state written to, or read from, a
// file descriptor the caller opened (how snapshots are saved and restored).
#pragma once

#include <localvm/qmp/client.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::qmp {

/// What `query-migrate` (or a MIGRATION event's data) says about a migration.
struct migration_info {
    /// QEMU's status word: "none", "setup", "active", "device",
    /// "completed", "failed", "cancelling", "cancelled", ...
    std::string status;
    std::string error;                  ///< `error-desc` of a failed migration; may be empty.
    std::uint64_t ram_transferred = 0;  ///< `ram.transferred`, bytes; 0 when absent.
    std::uint64_t total_time_ms = 0;    ///< `total-time`, milliseconds; 0 when absent.
};

/// Parses a `query-migrate` reply or a MIGRATION event's `data`. Pure. A
/// value without a string `status` gives nullopt and `errc::protocol_error`
/// in `ec`; other members are read when present and well typed.
std::optional<migration_info> parse_migration_info(const boost::json::value& v,
                                                   boost::system::error_code& ec);

/// True for the statuses a migration ends in: "completed", "failed", "cancelled".
bool migration_ended(std::string_view status) noexcept;

/// Settings of `migrate_to_fd` and `migrate_from_fd`.
struct migration_options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    migration_options() = default;
    /// Deadline for the whole migration. Default 10 minutes.
    std::chrono::milliseconds timeout = std::chrono::minutes(10);
    /// After a timeout or cancellation: how long to wait for QEMU to
    /// confirm `migrate_cancel`. Default 10 s.
    std::chrono::milliseconds cancel_timeout = std::chrono::seconds(10);
    /// The name the descriptor gets in QEMU (`getfd`). Default "localvm-migration".
    std::string fd_name = "localvm-migration";
    /// `max-bandwidth` for an outgoing migration, bytes per second. QEMU's
    /// default (128 MiB/s) is meant for live migration over a network; a
    /// paused guest saved to a local file wants all the disk gives. Default 1 TiB/s.
    std::uint64_t max_bandwidth = std::uint64_t(1) << 40;
};

/// Writes the machine state of the QEMU behind `c` to `fd` (a file or a
/// pipe the caller opened for writing): turns on the `events` migration
/// capability, sets `max-bandwidth`, hands `fd` over with `getfd` (SCM_RIGHTS
/// on the monitor socket; QEMU 7.2 has no `file:` URI), runs `migrate` to
/// `fd:NAME` and waits for the MIGRATION event that ends it. The guest
/// should be paused (`stop`) first, so that the state is one instant's;
/// QEMU leaves a completed source paused with its disks flushed and
/// released until `cont`. Returns `query-migrate`'s final figures once QEMU
/// has also left the "finish-migrate" run state, so that `cont` works at
/// once (QEMU announces completion a moment before that, with no event for
/// it: this asks `query-status` with a backoff of 1 ms doubling to 50 ms).
/// Throws `errc::process_failed` with QEMU's `error-desc` when the
/// migration fails (e.g. the disk is full), `errc::timeout` after
/// `options.timeout`, and what `execute` throws. On a timeout or
/// cancellation (throws `operation_aborted`) it first sends
/// `migrate_cancel` and waits up to `options.cancel_timeout` for QEMU to
/// confirm, so that QEMU writes no more to `fd`; a failed or cancelled
/// migration leaves the guest as it was (paused or running).
boost::asio::awaitable<migration_info> migrate_to_fd(client& c, int fd,
                                                     migration_options options = migration_options());

/// Loads the machine state from `fd` (opened for reading) into the QEMU
/// behind `c`, which must have been started with `-incoming defer`: turns
/// on the `events` capability, hands `fd` over with `getfd`, runs
/// `migrate-incoming` from `fd:NAME` and waits for the MIGRATION event
/// "completed". The guest stays paused when QEMU was started with `-S`
/// (then `cont`). Throws `errc::process_failed` when loading fails (QEMU
/// 7.2 exits then: its monitor closing is reported this way too),
/// `errc::timeout` after `options.timeout`, and what `execute` throws.
/// Cancellation throws `operation_aborted`; QEMU is left half-loaded and
/// should be ended by the caller.
boost::asio::awaitable<void> migrate_from_fd(client& c, int fd, migration_options options = migration_options());

} // namespace localvm::qmp
