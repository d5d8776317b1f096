// The guest agent commands localvm uses, without I/O: their arguments as
// JSON and their replies as typed values.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::qga {

/// One agent command as `session::begin_call` takes it.
struct request {
    std::string command;           ///< e.g. "guest-exec"
    boost::json::object arguments; ///< Empty when the command takes none.
    bool success_response = true;  ///< False for commands silent on success (guest-shutdown).
};

/// A program for `guest-exec` to run in the guest.
struct exec_request {
    /// The program (`argv[0]`, looked up in the agent's PATH when it has no
    /// '/') and its arguments. Must not be empty.
    std::vector<std::string> argv;
    /// "NAME=VALUE" entries; when not empty they are the program's whole
    /// environment (the agent does not merge them with its own).
    std::vector<std::string> env;
    /// Bytes for the program's stdin (sent base64); none: stdin is empty.
    std::optional<std::string> input;
    /// Capture stdout and stderr (returned by `guest-exec-status`). The
    /// agent keeps at most 16 MiB of each and marks the rest truncated.
    bool capture_output = true;
};

/// `guest-exec-status`: how a program started by `guest-exec` is doing.
/// Once `exited` was reported, the agent forgets the process.
struct exec_status {
    bool exited = false;          ///< Whether it has ended; the rest is set only then.
    std::optional<int> exit_code; ///< Its exit status when it exited normally.
    std::optional<int> signal;    ///< The signal that ended it otherwise.
    std::string out;              ///< Captured stdout (decoded).
    std::string err;              ///< Captured stderr (decoded).
    bool out_truncated = false;   ///< The agent dropped stdout past its limit.
    bool err_truncated = false;   ///< The agent dropped stderr past its limit.
};

/// `guest-file-read`: bytes read and whether the end of the file was reached.
struct file_chunk {
    std::string data; ///< Decoded bytes (fewer than asked near the end).
    bool eof = false;
};

/// An address of a guest network interface.
struct ip_address {
    std::string type;    ///< "ipv4" or "ipv6".
    std::string address; ///< e.g. "10.0.2.15", "fe80::5054:ff:fe12:3456".
    int prefix = 0;      ///< Prefix length, e.g. 24.
};

/// `guest-network-get-interfaces`: one interface.
struct network_interface {
    std::string name;             ///< e.g. "eth0".
    std::string hardware_address; ///< e.g. "52:54:00:12:34:56"; may be empty.
    std::vector<ip_address> addresses;
};

/// How `guest-shutdown` ends the guest.
enum class shutdown_mode { powerdown, halt, reboot };

/// Requests, one per command. None validates its input beyond what JSON
/// needs; the client does (e.g. an empty `argv`).
request make_ping();                        ///< `guest-ping`
request make_exec(const exec_request& r);   ///< `guest-exec`
request make_exec_status(std::int64_t pid); ///< `guest-exec-status`
request make_file_open(std::string_view path,
                       std::string_view mode); ///< `guest-file-open`, fopen(3) mode
request make_file_read(std::int64_t handle,
                       std::size_t count); ///< `guest-file-read`, at most `count` bytes
request make_file_write(std::int64_t handle, std::string_view bytes); ///< `guest-file-write`
request make_file_close(std::int64_t handle);                         ///< `guest-file-close`
request make_network_get_interfaces(); ///< `guest-network-get-interfaces`
/// `guest-set-time`: set the guest clock to `since_epoch` (UTC); without
/// it, the agent sets the system clock from the hardware clock (RTC).
request make_set_time(std::optional<std::chrono::nanoseconds> since_epoch);
request make_shutdown(shutdown_mode mode); ///< `guest-shutdown`, silent on success

/// Reply parsers: the typed value, or nullopt with `errc::protocol_error`
/// in `ec` when `result` does not have the documented shape.
std::optional<std::int64_t> parse_exec_pid(const boost::json::value& result,
                                           boost::system::error_code& ec);
std::optional<exec_status> parse_exec_status(const boost::json::value& result,
                                             boost::system::error_code& ec);
std::optional<std::int64_t> parse_file_handle(const boost::json::value& result,
                                              boost::system::error_code& ec);
std::optional<file_chunk> parse_file_read(const boost::json::value& result,
                                          boost::system::error_code& ec);
/// `guest-file-write`: the number of bytes written.
std::optional<std::size_t> parse_file_write(const boost::json::value& result,
                                            boost::system::error_code& ec);
std::optional<std::vector<network_interface>>
parse_network_interfaces(const boost::json::value& result, boost::system::error_code& ec);

} // namespace localvm::qga
