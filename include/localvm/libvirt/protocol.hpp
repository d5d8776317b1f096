// libvirt's RPC framing without I/O: message header, packets, errors.
//
// Every message on a libvirt connection is a 4-byte big-endian length (the
// whole message, the length word included), a 24-byte header and a payload
// whose meaning depends on the header (libvirt's virnetprotocol.x). Written
// from that published definition; no libvirt code is used.
#pragma once

#include <boost/system/error_code.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::libvirt {

/// The main program (`REMOTE_PROGRAM`) and its version.
inline constexpr std::uint32_t remote_program = 0x20008086;
inline constexpr std::uint32_t remote_version = 1;
/// The QEMU-specific program (`QEMU_PROGRAM`): monitor passthrough.
inline constexpr std::uint32_t qemu_program = 0x20008087;
inline constexpr std::uint32_t qemu_version = 1;
/// The keepalive program ("keep" in ASCII) with its two procedures.
inline constexpr std::uint32_t keepalive_program = 0x6b656570;
inline constexpr std::uint32_t keepalive_version = 1;
inline constexpr std::int32_t keepalive_ping = 1; ///< Asks the peer for a PONG.
inline constexpr std::int32_t keepalive_pong = 2; ///< Answers a PING.

/// What a message is (`virNetMessageType`).
enum class message_type : std::int32_t {
    call = 0,           ///< Client to server: a procedure's arguments.
    reply = 1,          ///< Server to client: the result or error of a call.
    message = 2,        ///< Either way, unsolicited: events, keepalive.
    stream = 3,         ///< Either way: data of the stream a call opened.
    call_with_fds = 4,  ///< A call passing file descriptors (not used here).
    reply_with_fds = 5, ///< A reply passing file descriptors (not used here).
    stream_hole = 6,    ///< A hole in a sparse stream (not used here).
};

/// A message's status (`virNetMessageStatus`).
enum class message_status : std::int32_t {
    ok = 0,      ///< Calls, messages; a successful reply; a finished stream.
    error = 1,   ///< A failed reply or stream: a `remote_error` follows.
    proceed = 2, ///< Stream data, more to follow (`VIR_NET_CONTINUE`).
};

/// The fixed part of every message (`virNetMessageHeader`).
struct header {
    std::uint32_t program = remote_program; ///< e.g. `remote_program`.
    std::uint32_t version = remote_version; ///< The program's version.
    std::int32_t procedure = 0;             ///< Procedure number within the program.
    message_type type = message_type::call;
    /// The client's number for a call, echoed by its reply and by its
    /// stream's packets; 0 in unsolicited messages.
    std::uint32_t serial = 0;
    message_status status = message_status::ok;

    friend bool operator==(const header&, const header&) = default;
};

/// One whole message: its header and its (undecoded) payload.
struct message {
    libvirt::header header;
    std::string payload;
};

/// Bytes of the length word and of the header.
inline constexpr std::size_t length_size = 4;
inline constexpr std::size_t header_size = 24;
/// Largest message libvirt 9 accepts, length word not counted
/// (`VIR_NET_MESSAGE_MAX`, 16 MiB).
inline constexpr std::size_t default_max_message_size = 16u << 20;
/// Payload bytes libvirt puts in one stream packet, and so do we
/// (`VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX`, 256 KiB).
inline constexpr std::size_t stream_chunk_size = 256u << 10;
/// Bytes a stream writer may have queued on its connection before
/// `stream::write` waits for the socket to take them: 4 MiB.
inline constexpr std::size_t stream_queue_limit = 4u << 20;

/// Appends a whole message (length word, `h`, `payload`) to `out`. Never
/// throws beyond std::bad_alloc.
void encode_message(std::string& out, const header& h, std::string_view payload);

/// Reads a header from 24 bytes; nullopt when the type or status is not one
/// of the enumerators above.
std::optional<header> decode_header(std::string_view bytes);

/// Turns the byte stream from a libvirt daemon into messages. Holds at most
/// one partial message between calls. Never throws beyond std::bad_alloc.
class frame_decoder {
public:
    /// A decoder rejecting messages longer than `max_message_size` bytes (the
    /// length word not counted).
    explicit frame_decoder(std::size_t max_message_size = default_max_message_size);

    /// Takes bytes from the front of `input` up to the end of the next whole
    /// message and returns it; nullopt with `ec` clear once `input` is used
    /// up first (the partial message is kept). Call again while `input` is
    /// not empty. Errors, after which the stream cannot be resynchronised
    /// (the decoder stays failed and consumes nothing more):
    /// `errc::message_too_large` for a length above the limit,
    /// `errc::protocol_error` for a length shorter than a header or an
    /// unknown type or status. `problem()` then says which.
    std::optional<message> consume(std::string_view& input, boost::system::error_code& ec);

    /// What the error was, e.g. "message length 12 is shorter than a header".
    const std::string& problem() const noexcept { return problem_; }
    /// Bytes of the partial message buffered.
    std::size_t buffered() const noexcept { return partial_.size(); }

private:
    std::size_t max_;
    std::string partial_;
    std::size_t need_ = 0; // total bytes of the message being read, once known
    boost::system::error_code failed_;
    std::string problem_;
};

/// A libvirt error (`virNetMessageError`): what a failed reply, or a failed
/// stream, carries. Field meanings are libvirt's `virError`.
struct remote_error {
    std::int32_t code = 0;              ///< `virErrorNumber`, e.g. 42 VIR_ERR_NO_DOMAIN.
    std::int32_t domain = 0;            ///< `virErrorDomain`: the subsystem, e.g. 10 VIR_FROM_QEMU.
    std::optional<std::string> message; ///< Human-readable text.
    std::int32_t level = 0;             ///< 1 warning, 2 error.
    std::optional<std::string> str1, str2, str3; ///< Extra information.
    std::int32_t int1 = 0, int2 = 0;             ///< Extra information.
};

/// Decodes a `remote_error` payload; nullopt, with `problem` set, when the
/// bytes are not one. The unused embedded domain and network are checked
/// and skipped.
std::optional<remote_error> decode_error(std::string_view payload, std::string& problem);

/// Encodes a `remote_error` (for tests and fake servers).
std::string encode_error(const remote_error& e);

} // namespace localvm::libvirt
