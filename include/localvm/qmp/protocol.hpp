// QMP (QEMU Machine Protocol) without I/O: framing, classification, commands.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace localvm::qmp {

/// QEMU's version as reported by the greeting and by `query-version`.
struct version {
    int major = 0;       ///< e.g. 7
    int minor = 0;       ///< e.g. 2
    int micro = 0;       ///< e.g. 22
    std::string package; ///< Distribution's package string, e.g. "Debian 1:7.2+dfsg-7"; may be empty.
};

/// The first message of every connection: `{"QMP": {"version": ..., "capabilities": [...]}}`.
struct greeting {
    version qemu;                          ///< The server's version.
    std::vector<std::string> capabilities; ///< Capabilities offered, e.g. {"oob"}.
};

/// A successful reply: `{"return": ..., "id": ...}`.
struct success {
    boost::json::value id;     ///< The command's id, echoed; null when the command had none.
    boost::json::value result; ///< The `return` member (often an empty object).
};

/// An error reply: `{"error": {"class": ..., "desc": ...}, "id": ...}`.
struct failure {
    boost::json::value id;   ///< The command's id; null when QEMU could not read one.
    std::string error_class; ///< QEMU's error class, e.g. "CommandNotFound", "GenericError".
    std::string desc;        ///< QEMU's human-readable description.
};

/// An asynchronous event: `{"event": ..., "data": ..., "timestamp": ...}`.
struct event {
    std::string name;                 ///< e.g. "SHUTDOWN", "STOP", "RESUME".
    boost::json::object data;         ///< The `data` member; empty when absent.
    std::int64_t seconds = 0;         ///< Timestamp, seconds since the epoch (host clock).
    std::int64_t microseconds = 0;    ///< Timestamp, microseconds part.
};

/// One whole, classified server message.
using message = std::variant<greeting, success, failure, event>;

/// Default limit for one message: 8 MiB (QEMU 7.2's `query-qmp-schema`
/// reply, the largest common one, is about 200 KiB).
inline constexpr std::size_t default_max_message_size = 8u << 20;

/// Turns the server's byte stream into messages. QEMU ends each message with
/// "\r\n"; "\n" alone is accepted too, and blank lines are skipped. Holds at
/// most one partial message between calls. Never throws (beyond
/// std::bad_alloc); errors are reported through `ec`.
class decoder {
public:
    /// A decoder rejecting messages longer than `max_message_size` bytes
    /// (default `default_max_message_size`; the line terminator not counted).
    explicit decoder(std::size_t max_message_size = default_max_message_size);

    /// Takes bytes from the front of `input` up to and including the end of
    /// the next message, and returns that message. Returns nullopt, with `ec`
    /// clear, once `input` is used up without completing a message: the
    /// partial message is kept for the next call. Call again while `input`
    /// is not empty: one read may hold many messages.
    /// Errors (the offending message is skipped, so decoding may go on):
    /// `errc::protocol_error` for bytes that are not a JSON object or an
    /// object that is no QMP message (e.g. a reply's `error` without
    /// `class`); `errc::message_too_large` once a message passes the limit
    /// (the rest of it, up to its line end, is discarded without buffering).
    std::optional<message> consume(std::string_view& input, boost::system::error_code& ec);

    /// Bytes of the partial message currently buffered.
    std::size_t buffered() const noexcept { return partial_.size(); }

    /// The configured limit.
    std::size_t max_message_size() const noexcept { return max_; }

private:
    std::optional<message> finish(std::string_view line, boost::system::error_code& ec);

    std::size_t max_;
    std::string partial_;
    bool skipping_ = false; // inside an oversized message, dropping bytes until its line end
    boost::json::parser parser_;
};

/// Classifies one parsed JSON value as a QMP message; `errc::protocol_error`
/// (and nullopt) when it is none. Exposed for tests and fuzzing.
std::optional<message> classify(boost::json::value&& value, boost::system::error_code& ec);

/// Builds command bytes with ids unique for one connection (1, 2, 3, ...).
class encoder {
public:
    /// Appends `{"execute": command, "arguments": arguments, "id": N}\r\n`
    /// to `out` (`"exec-oob"` instead of `"execute"` when `out_of_band`;
    /// `arguments` omitted when empty) and returns N. Never throws beyond
    /// std::bad_alloc; `command` is JSON-escaped.
    std::uint64_t encode(std::string& out, std::string_view command,
                         const boost::json::object& arguments = {}, bool out_of_band = false);

    /// The id the next `encode` will use.
    std::uint64_t next_id() const noexcept { return next_id_; }

private:
    std::uint64_t next_id_ = 1;
};

/// The id of a reply as an unsigned integer, or nullopt when it is absent or
/// not a non-negative integer (ids this library sends are always integers).
std::optional<std::uint64_t> numeric_id(const boost::json::value& id) noexcept;

} // namespace localvm::qmp
