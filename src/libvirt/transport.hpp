// Internal: how the client reaches a daemon. Both transports end in a unix
// stream socket: the daemon's own, or our end of a socketpair whose other
// end is ssh's stdin and stdout.
#pragma once

#include <localvm/libvirt/uri.hpp>
#include <localvm/process/child.hpp>
#include <localvm/ssh/command.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace localvm::libvirt::detail {

/// What ssh wrote to stderr (its last lines) and whether it has exited.
struct ssh_status {
    std::deque<std::string> err_tail; // at most 20 lines
    bool exited = false;
    std::string how;          // process::result::describe() once exited
    std::string text() const; // "ssh: <lines> (exited with status 255)"
};

struct transport {
    explicit transport(boost::asio::any_io_executor ex)
        : socket(ex) {}
    boost::asio::local::stream_protocol::socket socket;
    std::shared_ptr<process::child> ssh; // null for a unix socket
    std::shared_ptr<ssh_status> status;  // null for a unix socket
    std::string where;                   // "/run/x.sock", "ssh root@127.0.0.1:2222"
};

/// The ssh hop of the ssh URI `u` (pure): its host, port (22 when the URI
/// has none), user, `keyfile` and `known_hosts` (when absent,
/// ~/.ssh/known_hosts, as libvirt's own client). nullopt, with `problem`
/// set, when `u` cannot be used (no keyfile, $HOME unset without
/// known_hosts, a bad user or host). The libvirt backend reaches its guests'
/// forwards through this same hop.
std::optional<ssh::jump_host> ssh_hop(const uri& u, std::chrono::seconds connect_timeout,
                                      std::string& problem);

/// The ssh argv for `u` (pure): ssh's hardened options (ssh::ssh_argv), then
/// the remote command: `virt-ssh-helper NAME`, `NETCAT -U SOCKET`, or a
/// `sh -c` that runs the first when the host has it, else the second (see
/// `ssh_proxy`). Empty, with `problem` set, when `u` cannot be used (no
/// keyfile, a bad user or host).
std::vector<std::string> ssh_command(const uri& u, std::chrono::seconds connect_timeout,
                                     std::string& problem);

/// Opens the transport `u` names. Throws `errc::invalid_argument`,
/// `errc::not_found` (no socket, no ssh), `errc::libvirt_closed` (refused).
boost::asio::awaitable<transport> open_transport(const uri& u,
                                                 std::chrono::seconds connect_timeout);

} // namespace localvm::libvirt::detail
