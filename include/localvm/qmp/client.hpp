// A QMP client on the caller's executor: commands, events, connection end.
#pragma once

#include <localvm/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/qmp/protocol.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace localvm::qmp {

/// Connection settings.
struct client_options {
    /// Deadline for connecting, the greeting and capability negotiation
    /// together. Default 10 s.
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
    /// Ask for the `oob` capability when the greeting offers it (default
    /// false). With it QEMU reads ahead of the command it is running, so
    /// commands pipelined from several coroutines overlap their round trips.
    bool enable_oob = false;
    /// Longest server message accepted; a longer one closes the connection
    /// with `errc::message_too_large`. Default `default_max_message_size`.
    std::size_t max_message_size = default_max_message_size;
    /// Events a subscription buffers before it counts further ones as lost.
    /// Default 256.
    std::size_t event_buffer = 256;
};

/// Per-command settings.
struct execute_options {
    /// Deadline for the reply; `no_deadline` (the default) means none. When it passes
    /// the call throws `errc::timeout`; the late reply is discarded.
    std::chrono::milliseconds timeout = no_deadline;
    /// Send as `exec-oob` (needs `oob` negotiated and a command QEMU marks
    /// allow-oob, else QEMU answers with an error). Default false.
    bool out_of_band = false;
    /// A file descriptor to send along with the command (SCM_RIGHTS, with
    /// the command's first byte), for `getfd` and `add-fd`; -1 (the
    /// default) sends none. The call duplicates it at once, so the caller
    /// may close its own right after calling; the duplicate is closed once
    /// sent (or with the connection). A descriptor that cannot be
    /// duplicated throws `errc::invalid_argument`.
    int pass_fd = -1;
};

/// QEMU answered a command with an error. `code()` is `errc::qmp_error`;
/// the diagnostic reads "COMMAND: CLASS: DESC".
class command_error : public localvm::error {
public:
    command_error(std::string command, std::string error_class, std::string desc);
    const std::string& command() const noexcept { return command_; }         ///< e.g. "stop"
    const std::string& error_class() const noexcept { return error_class_; } ///< e.g. "CommandNotFound"
    const std::string& desc() const noexcept { return desc_; }               ///< QEMU's text

private:
    std::string command_, error_class_, desc_;
};

/// How a connection ended, as far as the client knows.
enum class connection_end {
    open,           ///< Still open.
    clean,          ///< The server closed it after a SHUTDOWN event or a `quit` was sent.
    unexpected,     ///< The server closed it (EOF or reset) with neither: QEMU died.
    local,          ///< `close()` or the client's destruction closed it.
    protocol_error, ///< The server sent malformed or oversized data.
};

/// `query-status` result.
struct run_status {
    std::string status;   ///< e.g. "prelaunch", "running", "paused", "shutdown".
    bool running = false; ///< Whether the guest CPUs run.
};

namespace detail {
struct client_impl;
struct subscriber;
} // namespace detail

/// A stream of events from one client, from the moment it was created.
/// Move-only; destroying it unsubscribes. Use from the client's executor.
class subscription {
public:
    subscription(subscription&&) noexcept;
    subscription& operator=(subscription&&) noexcept;
    ~subscription();

    /// The next matching event, in arrival order. Waits at most `timeout`
    /// (`no_deadline`, the default, waits without limit). Throws `errc::timeout`
    /// when it passes, `errc::monitor_closed` (or the code that closed the
    /// connection) once the connection has ended and every buffered event
    /// was taken, and `errc::invalid_argument` if another `next` on this
    /// subscription is waiting. Cancellation: throws
    /// `boost::asio::error::operation_aborted`; no event is lost.
    boost::asio::awaitable<event> next(std::chrono::milliseconds timeout = no_deadline);

    /// The next buffered event, if any, without waiting.
    std::optional<event> try_next();

    /// Events buffered, not yet taken.
    std::size_t buffered() const noexcept;

    /// Matching events dropped because the buffer was full (the newest are
    /// dropped, so what `next` returns stays in order without gaps before the loss).
    std::uint64_t lost() const noexcept;

private:
    friend class client;
    explicit subscription(std::shared_ptr<detail::subscriber> s);
    std::shared_ptr<detail::subscriber> s_;
};

/// A QMP connection (or several to one QEMU, see `connect_lanes`). Calls may
/// overlap freely from many coroutines; all must run on the executor
/// `connect` ran on (one thread). Move-only; destroying it closes the
/// connection (as `close()`).
class client {
public:
    /// Connects to the unix socket `path`, reads the greeting and negotiates
    /// capabilities (`oob` only when offered and `options.enable_oob`).
    /// Throws `errc::timeout` after `options.connect_timeout`, `errc::not_found`
    /// when nothing is at `path`, `errc::monitor_closed` when the connection is
    /// refused or ends early, `errc::protocol_error` for a bad greeting.
    /// Cancellation: throws `operation_aborted`, nothing stays open.
    static boost::asio::awaitable<client> connect(std::string path, client_options options = client_options());

    /// Like `connect`, with one connection ("lane") to each of `paths`, which
    /// must be QMP monitors of the same QEMU (one `-qmp` option each; a QEMU
    /// socket serves one client at a time). `execute` sends each command on
    /// the lane with the fewest commands in flight, so overlapping commands
    /// run side by side: QEMU 7.2 gets through pipelined commands on one
    /// monitor only about 1.4x as fast as serial ones, even with `oob`, and
    /// on four monitors about 2x (bench/qmp). Events come from the first
    /// lane only, each once. Commands in flight on different lanes at once
    /// may run in either order; a caller that awaits each command keeps its
    /// order. The client ends when
    /// the first lane does; when another ends first (QEMU closes them all as
    /// it exits), the first may read on for up to 1 s so that no event it
    /// carries is lost. Throws as `connect`, naming the path that failed, and
    /// `errc::invalid_argument` for an empty `paths`.
    static boost::asio::awaitable<client> connect_lanes(std::vector<std::string> paths,
                                                        client_options options = client_options());

    client(client&&) noexcept;
    client& operator=(client&&) noexcept;
    ~client();

    /// Runs `command` with `arguments` and returns its `return` value.
    /// Throws `command_error` (`errc::qmp_error`) for a QMP error reply,
    /// `errc::monitor_closed` if the connection ended before the reply (or
    /// the code that closed it, e.g. `errc::protocol_error`), `errc::timeout`
    /// per `options.timeout`. Cancellation: throws `operation_aborted`; the
    /// command may still run in QEMU, its late reply is discarded and the
    /// connection and other calls go on.
    boost::asio::awaitable<boost::json::value>
    execute(std::string command, boost::json::object arguments = {}, execute_options options = execute_options());

    /// Events named `name` (every event when empty) from now on, buffering
    /// at most `capacity` (0: `client_options::event_buffer`).
    subscription subscribe(std::string name = {}, std::size_t capacity = 0);
    /// Events for which `filter` returns true from now on; `filter` runs in
    /// the client's reader and must not block or throw.
    subscription subscribe(std::function<bool(const event&)> filter, std::size_t capacity = 0);

    // Convenience commands; each throws and cancels like `execute`.
    boost::asio::awaitable<run_status> query_status();  ///< `query-status`
    boost::asio::awaitable<version> query_version();    ///< `query-version`
    boost::asio::awaitable<void> stop();                ///< `stop`: pause the guest CPUs (event STOP)
    boost::asio::awaitable<void> cont();                ///< `cont`: resume them (event RESUME)
    boost::asio::awaitable<void> system_powerdown();    ///< ACPI power button (event POWERDOWN)
    /// `quit`: QEMU exits (SHUTDOWN with reason "host-qmp-quit", then EOF).
    /// Also returns normally when the connection ends before the reply.
    boost::asio::awaitable<void> quit();
    /// HMP passthrough (`human-monitor-command`), e.g. "info usernet";
    /// returns HMP's text output (a reply that is not text throws
    /// `errc::protocol_error`). `options` as for `execute`.
    boost::asio::awaitable<std::string>
    human_monitor_command(std::string command_line, execute_options options = execute_options());

    /// Waits until the connection ends and says how; returns at once when it
    /// has. Throws `errc::timeout` after `timeout` (`no_deadline`: no limit).
    /// Cancellation: throws `operation_aborted`; the connection is untouched.
    boost::asio::awaitable<connection_end> wait_closed(std::chrono::milliseconds timeout = no_deadline);

    /// Closes the connection: pending and later calls throw `errc::monitor_closed`,
    /// subscriptions end after their buffered events. Idempotent.
    void close() noexcept;

    const qmp::greeting& greeting() const noexcept; ///< The server's greeting.
    bool oob_enabled() const noexcept;              ///< Whether every lane has `oob`.
    std::size_t lanes() const noexcept;             ///< Connections (see `connect_lanes`).
    connection_end end() const noexcept;            ///< `open` until the connection ends.
    /// The SHUTDOWN event, once one arrived (its `data["reason"]`, e.g.
    /// "guest-shutdown", "host-qmp-quit", "host-signal").
    const std::optional<event>& shutdown_event() const noexcept;

private:
    explicit client(std::shared_ptr<detail::client_impl> impl);
    std::shared_ptr<detail::client_impl> impl_;
};

} // namespace localvm::qmp
