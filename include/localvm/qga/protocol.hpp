// The QEMU guest agent's wire protocol without I/O: resynchronisation and
// one call at a time, on the QMP framing of localvm/qmp/protocol.hpp.
#pragma once

#include <localvm/qmp/protocol.hpp>

#include <boost/json/object.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace localvm::qga {

/// The byte the agent puts before its reply to `guest-sync-delimited`, and
/// that a client sends before that request: it never occurs in JSON text
/// (UTF-8), so it cuts any half message the peer still holds.
inline constexpr char sync_marker = '\xff';

/// The sync reply arrived: everything before it was discarded, the stream is
/// in step and calls may be made.
struct synced {};

/// What `session::consume` yields when a step ends: `synced` after
/// `begin_sync`; the call's `qmp::success` or `qmp::failure` after
/// `begin_call` (with the call's id). A call made with `success_response ==
/// false` that the agent accepted yields `qmp::success` with a null result.
using outcome = std::variant<synced, qmp::success, qmp::failure>;

/// Where a session is.
enum class session_state {
    unsynced, ///< Not in step with the agent: input is discarded; `begin_sync` next.
    syncing,  ///< `begin_sync` sent; waiting for the marker and the sync reply.
    ready,    ///< In step, no call in flight: `begin_call` may be used.
    calling,  ///< A call is in flight; `consume` yields its reply.
};

/// One client's conversation with the agent, as a pure machine: the caller
/// writes the bytes it appends to `out` and feeds every byte it reads to
/// `consume`. The agent keeps no per-connection state except its JSON
/// parser, which a previous client may have left holding half a request,
/// and a previous client may have left replies unread in the channel: so a
/// conversation starts with `begin_sync`, and after any call whose reply was
/// not awaited (timeout, cancellation) the caller calls `abandon` and syncs
/// again. The agent runs one command at a time, so one call is in flight at
/// a time. Never throws beyond std::bad_alloc.
class session {
public:
    /// A session that accepts replies of up to `max_message_size` bytes
    /// (default `qmp::default_max_message_size`), in state `unsynced`.
    explicit session(std::size_t max_message_size = qmp::default_max_message_size);

    /// Appends `sync_marker` and `{"execute":"guest-sync-delimited",
    /// "arguments":{"id":TOKEN},"id":N}\r\n` to `out`. From then on `consume`
    /// discards input up to a `sync_marker`, then reads one line: the reply
    /// whose result is `token` yields `synced`; any other line is discarded
    /// with what preceded it, and the search for the marker goes on. `token`
    /// must be below 2^63 and should differ between syncs of one channel (a
    /// previous client's sync reply may still be unread). Abandons any call
    /// in flight. State: `syncing`.
    void begin_sync(std::string& out, std::uint64_t token);

    /// Appends `{"execute":COMMAND,"arguments":ARGS,"id":N}\r\n` to `out`
    /// (no "arguments" when empty) and returns N (1, 2, 3, ...). When
    /// `success_response` is false (commands that do not reply on success,
    /// e.g. `guest-shutdown`), a `guest-ping` is appended too: its reply
    /// means the agent accepted the command. Requires state `ready`; in any
    /// other state nothing is appended, `ec` is `errc::invalid_argument` and
    /// 0 returned. State: `calling`.
    std::uint64_t begin_call(std::string& out, std::string_view command,
                             const boost::json::object& arguments, bool success_response,
                             boost::system::error_code& ec);

    /// Takes bytes from the front of `input` and returns an outcome when the
    /// current step ends (state then `ready`); nullopt once `input` is used
    /// up (partial messages are kept). Call again while `input` is not empty.
    /// In `unsynced` and `ready` input is discarded (nothing is expected;
    /// late replies of an abandoned call land here); in `syncing` nothing is
    /// an error. In `calling`: events, greetings and replies with an id
    /// below the call's (late replies of earlier calls) are ignored; a
    /// failure without id is the call's (the agent could not read the
    /// request); any other reply, a line that is not a QMP message
    /// (`errc::protocol_error`) or one longer than the limit
    /// (`errc::message_too_large`) sets `ec`, and the state becomes
    /// `unsynced`.
    std::optional<outcome> consume(std::string_view& input, boost::system::error_code& ec);

    /// Gives up the call in flight or the sync under way (its reply may
    /// still come): state `unsynced`. No effect in `unsynced`.
    void abandon() noexcept;

    /// Current state.
    session_state state() const noexcept { return state_; }

    /// The id of the call in flight (0 when none).
    std::uint64_t call_id() const noexcept { return state_ == session_state::calling ? call_ : 0; }

private:
    std::optional<outcome> consume_sync(std::string_view& input);
    std::optional<outcome> consume_call(std::string_view& input, boost::system::error_code& ec);
    std::optional<outcome> fail(boost::system::error_code& ec, boost::system::error_code code);

    std::size_t max_;
    session_state state_ = session_state::unsynced;
    qmp::encoder enc_;
    std::unique_ptr<qmp::decoder> dec_; // fresh after each sync
    // Syncing: the token awaited, whether a marker was seen, the line after it.
    std::uint64_t token_ = 0;
    bool rest_of_line_ = false; // an oversized reply's tail is still to come
    bool marked_ = false;
    bool line_too_long_ = false;
    std::string line_;
    // Calling: the call's id, and the ping standing in for its reply (0: none).
    std::uint64_t call_ = 0;
    std::uint64_t ping_ = 0;
};

} // namespace localvm::qga
