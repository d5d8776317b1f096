#include <localvm/error.hpp>
#include <localvm/qga/protocol.hpp>

#include <boost/json/parser.hpp>

namespace localvm::qga {

namespace json = boost::json;
using boost::system::error_code;

session::session(std::size_t max_message_size)
    : max_(max_message_size) {}

void session::begin_sync(std::string& out, std::uint64_t token) {
    json::object args;
    args["id"] = token;
    out += sync_marker;
    enc_.encode(out, "guest-sync-delimited", args);
    state_ = session_state::syncing;
    token_ = token;
    marked_ = false;
    line_too_long_ = false;
    line_.clear();
    dec_.reset();
}

std::uint64_t session::begin_call(std::string& out, std::string_view command,
                                  const json::object& arguments, bool success_response,
                                  error_code& ec) {
    if (state_ != session_state::ready) {
        ec = make_error_code(errc::invalid_argument);
        return 0;
    }
    ec = {};
    call_ = enc_.encode(out, command, arguments);
    ping_ = success_response ? 0 : enc_.encode(out, "guest-ping");
    state_ = session_state::calling;
    return call_;
}

void session::abandon() noexcept {
    state_ = session_state::unsynced;
    line_.clear();
    dec_.reset();
}

std::optional<outcome> session::fail(error_code& ec, error_code code) {
    ec = code;
    abandon();
    return std::nullopt;
}

std::optional<outcome> session::consume(std::string_view& input, error_code& ec) {
    ec = {};
    switch (state_) {
    case session_state::unsynced:
    case session_state::ready:
        if (rest_of_line_ && input.find('\n') != std::string_view::npos)
            rest_of_line_ = false;
        input = {};
        return std::nullopt;
    case session_state::syncing:
        return consume_sync(input);
    case session_state::calling:
        return consume_call(input, ec);
    }
    return std::nullopt;
}

// Everything up to a marker is stale; the line after it is a sync reply,
// ours or an earlier client's. A marker inside that line starts it over: the
// line before it was cut off.
std::optional<outcome> session::consume_sync(std::string_view& input) {
    if (rest_of_line_) {
        auto nl = input.find('\n');
        if (nl == std::string_view::npos) {
            input = {};
            return std::nullopt;
        }
        input.remove_prefix(nl + 1);
        rest_of_line_ = false;
    }
    while (!input.empty()) {
        if (!marked_) {
            auto at = input.find(sync_marker);
            if (at == std::string_view::npos) {
                input = {};
                return std::nullopt;
            }
            input.remove_prefix(at + 1);
            marked_ = true;
            line_too_long_ = false;
            line_.clear();
            continue;
        }
        auto end = input.find_first_of(std::string_view("\xff\n", 2));
        auto part = input.substr(0, end);
        if (!line_too_long_) {
            if (line_.size() + part.size() > max_ + 1) {
                line_too_long_ = true;
                line_.clear();
            } else {
                line_.append(part);
            }
        }
        if (end == std::string_view::npos) {
            input = {};
            return std::nullopt;
        }
        bool newline = input[end] == '\n';
        input.remove_prefix(end + 1);
        if (!newline) { // another marker: start the line over
            line_too_long_ = false;
            line_.clear();
            continue;
        }
        marked_ = false;
        if (line_too_long_)
            continue;
        json::parser p;
        json::error_code jec;
        p.write(line_.data(), line_.size(), jec);
        if (jec)
            continue;
        error_code ec;
        auto m = qmp::classify(p.release(), ec);
        auto* s = m ? std::get_if<qmp::success>(&*m) : nullptr;
        if (!s || qmp::numeric_id(s->result) != token_)
            continue;
        state_ = session_state::ready;
        line_.clear();
        dec_ = std::make_unique<qmp::decoder>(max_);
        return outcome(synced{});
    }
    return std::nullopt;
}

std::optional<outcome> session::consume_call(std::string_view& input, error_code& ec) {
    while (!input.empty()) {
        const auto before = input;
        auto m = dec_->consume(input, ec);
        if (ec) {
            // An oversized reply may be cut off before its line end: the
            // rest of that line is not searched for a sync marker, however
            // the bytes were split into reads.
            const auto used = before.size() - input.size();
            rest_of_line_ = used == 0 || before[used - 1] != '\n';
            return fail(ec, ec);
        }
        if (!m)
            continue;
        if (std::holds_alternative<qmp::event>(*m) || std::holds_alternative<qmp::greeting>(*m))
            continue;
        const json::value& idv = std::holds_alternative<qmp::success>(*m)
                                     ? std::get<qmp::success>(*m).id
                                     : std::get<qmp::failure>(*m).id;
        auto id = qmp::numeric_id(idv);
        if (!id && idv.is_null() && std::holds_alternative<qmp::failure>(*m))
            id = call_; // the agent could not read the request's id
        if (!id)
            return fail(ec, make_error_code(errc::protocol_error));
        if (*id < call_)
            continue;
        if (*id == call_ && (ping_ == 0 || std::holds_alternative<qmp::failure>(*m))) {
            state_ = session_state::ready;
            if (auto* s = std::get_if<qmp::success>(&*m))
                return outcome(std::move(*s));
            return outcome(std::move(std::get<qmp::failure>(*m)));
        }
        if (ping_ != 0 && (*id == call_ || *id == ping_)) {
            // Accepted: no reply to the command itself (or one that it gave
            // although documented not to; the ping's reply then follows and
            // is dropped in state `ready`).
            if (*id == ping_ && std::holds_alternative<qmp::failure>(*m))
                return fail(ec, make_error_code(errc::protocol_error));
            state_ = session_state::ready;
            return outcome(qmp::success{json::value(call_), json::value()});
        }
        return fail(ec, make_error_code(errc::protocol_error));
    }
    return std::nullopt;
}

} // namespace localvm::qga
