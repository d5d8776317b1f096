// An asynchronous libvirt client on the caller's executor, speaking
// libvirt's RPC protocol itself (no libvirt.so): many calls in flight on one
// connection, events and streams, keepalive.
#pragma once

#include <localvm/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/libvirt/events.hpp>
#include <localvm/libvirt/keepalive.hpp>
#include <localvm/libvirt/procedures.hpp>
#include <localvm/libvirt/protocol.hpp>
#include <localvm/libvirt/stream.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace localvm::libvirt {

/// Connection settings.
struct client_options {
    /// Deadline for reaching the daemon (the socket, or ssh and its remote
    /// proxy), the auth check and CONNECT_OPEN together. Default 30 s.
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(30);
    /// PING after this much silence from the daemon; give up after `count`
    /// unanswered PINGs (the connection then ends with `errc::timeout`).
    /// Default 5 s and 5, as libvirt's own client.
    keepalive_options keepalive;
    /// Longest message accepted (length word not counted); a longer one ends
    /// the connection with `errc::message_too_large`. Default 16 MiB.
    std::size_t max_message_size = default_max_message_size;
    /// Events a `lifecycle_events` buffers before counting more as lost. Default 256.
    std::size_t event_buffer = 256;
};

/// Per-call settings.
struct call_options {
    /// Deadline for the reply; `no_deadline` (the default) means none. When it passes
    /// the call throws `errc::timeout`; the late reply is discarded.
    std::chrono::milliseconds timeout = no_deadline;
};

/// The daemon answered a call (or ended a stream) with an error.
/// `code()` is `errc::libvirt_error`; the diagnostic reads
/// "PROCEDURE: MESSAGE (libvirt error CODE, domain DOMAIN)".
class call_error : public localvm::error {
public:
    call_error(std::string procedure, remote_error e);
    const std::string& procedure() const noexcept {
        return procedure_;
    } ///< e.g. "DOMAIN_LOOKUP_BY_NAME"
    const remote_error& remote() const noexcept { return remote_; } ///< All the daemon sent.
    std::int32_t libvirt_code() const noexcept {
        return remote_.code;
    } ///< e.g. 42 VIR_ERR_NO_DOMAIN.
    std::int32_t libvirt_domain() const noexcept {
        return remote_.domain;
    } ///< e.g. 10 VIR_FROM_QEMU.

private:
    std::string procedure_;
    remote_error remote_;
};

/// How a connection ended, as far as the client knows.
enum class connection_end {
    open,           ///< Still open.
    clean,          ///< `close()` closed it: CONNECT_CLOSE answered (or not), then EOF.
    unexpected,     ///< The daemon (or ssh) closed it unasked, or it failed.
    local,          ///< `abort()` or the client's destruction closed it.
    protocol_error, ///< The daemon sent malformed or oversized data.
    keepalive,      ///< The daemon stopped answering keepalive PINGs.
};

/// `virDomainState`.
enum class domain_state : std::int32_t {
    nostate = 0,
    running = 1,
    blocked = 2,
    paused = 3,
    shutdown = 4,
    shutoff = 5,
    crashed = 6,
    pmsuspended = 7,
};

/// DOMAIN_GET_INFO's answer.
struct domain_info {
    domain_state state{};
    std::uint64_t max_memory_kib = 0;
    std::uint64_t memory_kib = 0;
    unsigned vcpus = 0;
    std::uint64_t cpu_time_ns = 0;
};

namespace detail {
struct client_impl;
} // namespace detail

/// One connection to a libvirt daemon. Calls may overlap freely from many
/// coroutines (each gets its own serial; replies may come in any order);
/// all must run on the executor `connect` ran on. Move-only; destroying it
/// ends the connection at once (as `abort()`), killing an ssh transport.
///
/// Authentication: only `none` (the daemon's `auth_unix_rw = "none"`, e.g.
/// root on the local socket with a private config, or ssh to such a host).
/// A daemon that demands polkit or SASL is refused with `errc::unsupported`.
class client {
public:
    /// Connects to the daemon named by a libvirt URI: `qemu:///system`,
    /// `qemu+unix:///system?socket=PATH`, or `qemu+ssh://[user@]host[:port]/
    /// system?keyfile=KEY[&known_hosts=FILE][&socket=PATH][&proxy=...]`
    /// (see uri.hpp). Over ssh it runs `ssh -F none ... -- [user@]host
    /// 'virt-ssh-helper URI'` (or `nc -U SOCKET`) as a child and speaks over
    /// its stdin/stdout. Then AUTH_LIST (must offer `none`) and CONNECT_OPEN
    /// with the URI's `name()`. Throws `errc::invalid_argument` for a bad URI
    /// (or an ssh URI without `keyfile`), `errc::not_found` when the socket
    /// does not exist, `errc::libvirt_closed` when the daemon or ssh ends the
    /// connection early (with ssh's stderr), `errc::unsupported` for an auth
    /// other than none, `call_error` when CONNECT_OPEN fails, `errc::timeout`
    /// after `options.connect_timeout`. Cancellation: throws
    /// `operation_aborted`; nothing stays open or running.
    static boost::asio::awaitable<client> connect(std::string uri,
                                                  client_options options = client_options());

    client(client&&) noexcept;
    client& operator=(client&&) noexcept;
    ~client();

    /// Calls `procedure` of `program` with XDR `args` and returns the reply's
    /// XDR payload. Throws `call_error` for an error reply,
    /// `errc::libvirt_closed` (or the code that ended the connection) when it
    /// ends before the reply, `errc::timeout` per `options`. Cancellation:
    /// throws `operation_aborted`; the call may still run in the daemon, its
    /// late reply is discarded, the connection and other calls go on.
    boost::asio::awaitable<std::string> call(std::uint32_t program, std::int32_t procedure,
                                             std::string args, call_options options = {});

    // Typed calls; each throws and cancels as `call`, and throws
    // `errc::protocol_error` when the reply does not decode.
    boost::asio::awaitable<std::uint64_t> hypervisor_version(); ///< e.g. 7002022 for QEMU 7.2.22
    boost::asio::awaitable<std::string> hostname();
    boost::asio::awaitable<std::string> capabilities();            ///< Capabilities XML.
    boost::asio::awaitable<node_get_info_ret> node_info();         ///< The host's CPUs and memory.
    boost::asio::awaitable<std::uint64_t> node_free_memory(); ///< The host's free memory, bytes.
    boost::asio::awaitable<std::vector<std::int32_t>> auth_list(); ///< 0 none, 1 SASL, 2 polkit

    boost::asio::awaitable<domain_ref> define_xml(std::string xml); ///< Persistent, not started.
    boost::asio::awaitable<void> undefine(domain_ref dom);
    boost::asio::awaitable<void> create(domain_ref dom); ///< Starts a defined domain.
    boost::asio::awaitable<domain_ref> create_xml(std::string xml,
                                                  std::uint32_t flags = 0); ///< Transient.
    boost::asio::awaitable<domain_ref> lookup_domain(std::string name);
    /// State and its reason (`virDomain*Reason` of that state).
    boost::asio::awaitable<std::pair<domain_state, std::int32_t>>
    domain_get_state(domain_ref dom, call_options options = {});
    boost::asio::awaitable<domain_info> domain_get_info(domain_ref dom);
    boost::asio::awaitable<void> shutdown(domain_ref dom,
                                          std::uint32_t flags = 0); ///< ACPI request.
    boost::asio::awaitable<void> destroy(domain_ref dom, std::uint32_t flags = 0); ///< Kills it.
    boost::asio::awaitable<std::string> xml_desc(domain_ref dom, std::uint32_t flags = 0);
    /// QEMU monitor passthrough (qemu program): `cmd` is QMP JSON, or HMP
    /// with `flags` 1; returns QEMU's answer as text.
    boost::asio::awaitable<std::string> monitor_command(domain_ref dom, std::string cmd,
                                                        std::uint32_t flags = 0);

    boost::asio::awaitable<pool_ref> lookup_pool(std::string name);
    boost::asio::awaitable<vol_ref> create_volume(pool_ref pool, std::string xml,
                                                  std::uint32_t flags = 0);
    boost::asio::awaitable<vol_ref> lookup_volume(pool_ref pool, std::string name);
    boost::asio::awaitable<std::string> volume_path(vol_ref vol);
    /// The volume's XML as the daemon describes it (format, capacity,
    /// backing store; the daemon probes the file).
    boost::asio::awaitable<std::string> volume_xml(vol_ref vol, std::uint32_t flags = 0);
    boost::asio::awaitable<void> delete_volume(vol_ref vol, std::uint32_t flags = 0);

    /// Opens an upload stream into `vol` at `offset` for `length` bytes (0:
    /// to the end). Write, then `finish()`.
    boost::asio::awaitable<stream> open_upload(vol_ref vol, std::uint64_t offset = 0,
                                               std::uint64_t length = 0);
    /// `open_upload`, one `write` of `data`, `finish`.
    boost::asio::awaitable<void> upload(vol_ref vol, std::string data, std::uint64_t offset = 0);
    /// Opens the domain's console (`dev_name` e.g. "serial0"; the first
    /// console when empty) as a two-way stream.
    boost::asio::awaitable<stream> open_console(domain_ref dom,
                                                std::optional<std::string> dev_name = std::nullopt,
                                                std::uint32_t flags = 0);

    /// Registers for lifecycle events of `dom` (of every domain when empty);
    /// events that arrive from the moment the daemon answers are delivered.
    boost::asio::awaitable<lifecycle_events>
    subscribe_lifecycle(std::optional<domain_ref> dom = std::nullopt);

    /// Ends the connection politely: CONNECT_CLOSE, then closes (the end is
    /// `clean`). An EOF in place of the reply is clean too (virt-ssh-helper
    /// loses the reply when the daemon closes right after it). Pending calls
    /// then throw `errc::libvirt_closed`. Otherwise throws as `call` (the
    /// connection is closed anyway).
    boost::asio::awaitable<void> close();

    /// Ends the connection now: pending calls, stream readers and event
    /// waiters throw `errc::libvirt_closed`; an ssh transport is terminated.
    /// Idempotent.
    void abort() noexcept;

    /// Waits until the connection ends and says how. Throws `errc::timeout`
    /// after `timeout` (`no_deadline`: no limit). Cancellation: throws `operation_aborted`.
    boost::asio::awaitable<connection_end>
    wait_closed(std::chrono::milliseconds timeout = no_deadline);

    connection_end end() const noexcept; ///< `open` until the connection ends.
    /// Why it ended (e.g. "libvirt connection to /run/x.sock ended (EOF)");
    /// empty while open.
    std::string end_diagnostic() const;
    std::size_t in_flight() const noexcept; ///< Calls sent, not yet answered or abandoned.

private:
    explicit client(std::shared_ptr<detail::client_impl> impl);
    std::shared_ptr<detail::client_impl> impl_;
};

} // namespace localvm::libvirt
