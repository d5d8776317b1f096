// A QEMU guest agent client on the caller's executor: typed calls, each with
// a deadline, over a unix socket (QEMU's chardev for the agent's
// virtio-serial port, or `qemu-ga -m unix-listen`).
#pragma once

#include <localvm/error.hpp>
#include <localvm/qga/commands.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace localvm::qga {

/// The default `timeout` of every call: `client_options::call_timeout`.
/// Calls to an agent always have a deadline (a guest's agent may never
/// answer), so there is no `no_deadline` here: a zero timeout means this.
inline constexpr std::chrono::milliseconds use_call_timeout{0};

/// Connection settings.
struct client_options {
    /// Deadline for connecting to the socket. Default 10 s.
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
    /// Deadline of a call given `use_call_timeout`: from the call until its
    /// reply, including waiting for earlier calls and any resync. Default 30 s.
    std::chrono::milliseconds call_timeout = std::chrono::seconds(30);
    /// Longest agent message accepted. Default 64 MiB: `guest-exec-status`
    /// may carry 16 MiB of stdout and of stderr, base64-encoded.
    std::size_t max_message_size = std::size_t(64) << 20;
    /// `exec` polls `guest-exec-status` (the agent has no exit event): first
    /// after `exec_poll_first`, the interval doubling up to `exec_poll_max`.
    /// Defaults 1 ms and 100 ms.
    std::chrono::milliseconds exec_poll_first = std::chrono::milliseconds(1);
    std::chrono::milliseconds exec_poll_max = std::chrono::milliseconds(100);
};

namespace detail {
struct client_impl;
} // namespace detail

/// A connection to one guest agent. Calls may be made from several
/// coroutines at once: they run one after another, in the order made (the
/// agent runs one command at a time). All must run on the executor the
/// client was made on. Move-only; destroying it closes the connection.
///
/// Every call takes a `timeout` (default `use_call_timeout`)
/// covering its wait for earlier calls, a resync if needed and the reply;
/// when it passes the call throws `errc::timeout` naming the command (and
/// saying when the agent never answered the resync). Agent error replies
/// throw `qmp::command_error` (`errc::qmp_error`, "COMMAND: CLASS: DESC").
/// The connection ending throws `errc::monitor_closed` naming the socket;
/// malformed replies `errc::protocol_error` or `errc::message_too_large`.
/// Cancellation throws `operation_aborted`; the command may still run in
/// the guest. After a timeout, a cancellation or a bad reply the next call
/// first resynchronises (`guest-sync-delimited`), so late replies are never
/// taken for new ones.
class client {
public:
    /// Connects to the unix socket `path`. The first call resynchronises.
    /// While the socket's listen queue is full (QEMU's chardev serves one
    /// client and queues one), tries again until `options.connect_timeout`.
    /// Throws `errc::not_found` when nothing is at `path`,
    /// `errc::monitor_closed` when the connection is refused,
    /// `errc::timeout` after `options.connect_timeout`. Cancellation: throws
    /// `operation_aborted`, nothing stays open.
    static boost::asio::awaitable<client> connect(std::string path,
                                                  client_options options = client_options());

    /// A client on an already connected socket (e.g. one end of a
    /// socketpair); `name` stands for the peer in messages.
    static client adopt(boost::asio::local::stream_protocol::socket socket, std::string name,
                        client_options options = client_options());

    client(client&&) noexcept;
    client& operator=(client&&) noexcept;
    ~client();

    /// Resynchronises now (`guest-sync-delimited`), discarding whatever a
    /// previous client left in the channel. Calls do it when needed.
    boost::asio::awaitable<void> sync(std::chrono::milliseconds timeout = use_call_timeout);

    /// Runs any agent command and returns its `return` value (null for a
    /// command without success response that the agent accepted).
    boost::asio::awaitable<boost::json::value>
    execute(request r, std::chrono::milliseconds timeout = use_call_timeout);

    /// `guest-ping`: the agent answers.
    boost::asio::awaitable<void> ping(std::chrono::milliseconds timeout = use_call_timeout);

    /// `guest-exec`: starts `r` and returns its guest pid. Throws
    /// `errc::invalid_argument` for an empty `argv`.
    boost::asio::awaitable<std::int64_t>
    exec_start(exec_request r, std::chrono::milliseconds timeout = use_call_timeout);
    /// `guest-exec-status` of `pid`.
    boost::asio::awaitable<qga::exec_status>
    exec_status(std::int64_t pid, std::chrono::milliseconds timeout = use_call_timeout);
    /// `exec_start`, then `exec_status` until the program exited, polling
    /// as `client_options` says; `timeout` covers it all. On timeout or
    /// cancellation the guest program keeps running (kill it with another
    /// `exec`); the error names its pid.
    boost::asio::awaitable<qga::exec_status> exec(exec_request r,
                                                  std::chrono::milliseconds timeout = use_call_timeout);

    /// `guest-file-open` with an fopen(3) `mode` ("r", "w", "a", "r+", ...);
    /// returns the agent's handle.
    boost::asio::awaitable<std::int64_t>
    file_open(std::string path, std::string mode, std::chrono::milliseconds timeout = use_call_timeout);
    /// `guest-file-read` of at most `count` bytes (the agent refuses more
    /// than 48 MiB).
    boost::asio::awaitable<file_chunk> file_read(std::int64_t handle, std::size_t count,
                                                 std::chrono::milliseconds timeout = use_call_timeout);
    /// `guest-file-write` of `bytes`; returns the count written (the agent
    /// writes all unless the guest's write fails).
    boost::asio::awaitable<std::size_t>
    file_write(std::int64_t handle, std::string bytes,
               std::chrono::milliseconds timeout = use_call_timeout);
    /// `guest-file-close`.
    boost::asio::awaitable<void> file_close(std::int64_t handle,
                                            std::chrono::milliseconds timeout = use_call_timeout);

    /// `guest-network-get-interfaces`.
    boost::asio::awaitable<std::vector<network_interface>>
    network_interfaces(std::chrono::milliseconds timeout = use_call_timeout);

    /// `guest-set-time`: the guest clock to `since_epoch` (UTC), or from
    /// its hardware clock when none.
    boost::asio::awaitable<void> set_time(std::optional<std::chrono::nanoseconds> since_epoch,
                                          std::chrono::milliseconds timeout = use_call_timeout);

    /// `guest-shutdown`. The agent does not answer on success: it counts as
    /// accepted when the agent then answers a `guest-ping`, or the
    /// connection ends (the guest going down); an error reply throws.
    boost::asio::awaitable<void> shutdown(shutdown_mode mode = shutdown_mode::powerdown,
                                          std::chrono::milliseconds timeout = use_call_timeout);

    /// Closes the connection; later calls throw `errc::monitor_closed`.
    void close() noexcept;

    /// The socket path (or the name given to `adopt`).
    const std::string& name() const noexcept;

private:
    explicit client(std::shared_ptr<detail::client_impl> impl);
    std::shared_ptr<detail::client_impl> impl_;
};

} // namespace localvm::qga
