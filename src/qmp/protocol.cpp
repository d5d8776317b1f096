#include <localvm/error.hpp>
#include <localvm/qmp/protocol.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <limits>

namespace localvm::qmp {

namespace json = boost::json;
using boost::system::error_code;

namespace {

std::optional<message> bad(error_code& ec) {
    ec = make_error_code(errc::protocol_error);
    return std::nullopt;
}

// A JSON integer that fits `T`; QEMU's numbers here are small non-negative ints.
template <class T> bool get_int(const json::object& o, std::string_view key, T& out) {
    auto* v = o.if_contains(key);
    if (!v)
        return false;
    if (v->is_int64()) {
        auto x = v->get_int64();
        if (x < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
            x > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
            return false;
        out = static_cast<T>(x);
        return true;
    }
    if (v->is_uint64()) {
        auto x = v->get_uint64();
        if (x > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
            return false;
        out = static_cast<T>(x);
        return true;
    }
    return false;
}

std::optional<message> classify_greeting(const json::value& qmp, error_code& ec) {
    auto* o = qmp.if_object();
    if (!o)
        return bad(ec);
    greeting g;
    auto* ver = o->if_contains("version");
    auto* vo = ver ? ver->if_object() : nullptr;
    auto* q = vo ? vo->if_contains("qemu") : nullptr;
    auto* qo = q ? q->if_object() : nullptr;
    if (!qo || !get_int(*qo, "major", g.qemu.major) || !get_int(*qo, "minor", g.qemu.minor) ||
        !get_int(*qo, "micro", g.qemu.micro))
        return bad(ec);
    if (auto* pkg = vo->if_contains("package")) {
        if (!pkg->is_string())
            return bad(ec);
        g.qemu.package = pkg->get_string();
    }
    auto* caps = o->if_contains("capabilities");
    auto* ca = caps ? caps->if_array() : nullptr;
    if (!ca)
        return bad(ec);
    for (auto& c : *ca) {
        if (!c.is_string())
            return bad(ec);
        g.capabilities.emplace_back(c.get_string());
    }
    return message(std::move(g));
}

} // namespace

std::optional<message> classify(json::value&& value, error_code& ec) {
    ec = {};
    auto* o = value.if_object();
    if (!o)
        return bad(ec);
    json::value id;
    if (auto* i = o->if_contains("id"))
        id = std::move(*i);

    if (auto* r = o->if_contains("return"))
        return message(success{std::move(id), std::move(*r)});

    if (auto* e = o->if_contains("error")) {
        auto* eo = e->if_object();
        auto* cls = eo ? eo->if_contains("class") : nullptr;
        auto* desc = eo ? eo->if_contains("desc") : nullptr;
        if (!cls || !desc || !cls->is_string() || !desc->is_string())
            return bad(ec);
        return message(failure{std::move(id), std::string(cls->get_string()),
                               std::string(desc->get_string())});
    }

    if (auto* ev = o->if_contains("event")) {
        if (!ev->is_string())
            return bad(ec);
        event out;
        out.name = ev->get_string();
        if (auto* d = o->if_contains("data")) {
            if (!d->is_object())
                return bad(ec);
            out.data = std::move(d->get_object());
        }
        if (auto* ts = o->if_contains("timestamp")) {
            auto* tso = ts->if_object();
            if (!tso || !get_int(*tso, "seconds", out.seconds) ||
                !get_int(*tso, "microseconds", out.microseconds))
                return bad(ec);
        }
        return message(std::move(out));
    }

    if (auto* g = o->if_contains("QMP"))
        return classify_greeting(*g, ec);

    return bad(ec);
}

decoder::decoder(std::size_t max_message_size) : max_(max_message_size) {}

std::optional<message> decoder::finish(std::string_view line, error_code& ec) {
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    if (line.size() > max_) {
        ec = make_error_code(errc::message_too_large);
        return std::nullopt;
    }
    // Blank lines carry nothing; they are not an error.
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
        ec = {};
        return std::nullopt;
    }
    parser_.reset();
    json::error_code jec;
    parser_.write(line.data(), line.size(), jec);
    if (jec)
        return bad(ec);
    return classify(parser_.release(), ec);
}

std::optional<message> decoder::consume(std::string_view& input, error_code& ec) {
    ec = {};
    while (!input.empty()) {
        auto nl = input.find('\n');
        if (nl == std::string_view::npos) {
            // A partial message: keep it, unless it is already too long. "+1"
            // leaves room for the '\r' of a "\r\n" that may follow.
            if (!skipping_ && partial_.size() + input.size() > max_ + 1) {
                partial_.clear();
                skipping_ = true;
                input = {};
                ec = make_error_code(errc::message_too_large);
                return std::nullopt;
            }
            if (!skipping_)
                partial_.append(input);
            input = {};
            return std::nullopt;
        }
        auto chunk = input.substr(0, nl);
        input.remove_prefix(nl + 1);
        if (skipping_) {
            // The end of an oversized message, already reported.
            skipping_ = false;
            continue;
        }
        std::optional<message> m;
        if (partial_.empty()) {
            m = finish(chunk, ec); // zero-copy: the whole line is in this read
        } else {
            if (partial_.size() + chunk.size() > max_ + 1) {
                partial_.clear();
                ec = make_error_code(errc::message_too_large);
                return std::nullopt;
            }
            partial_.append(chunk);
            m = finish(partial_, ec);
            partial_.clear();
        }
        if (m || ec)
            return m;
        // A blank line: go on with the rest of the input.
    }
    return std::nullopt;
}

std::uint64_t encoder::encode(std::string& out, std::string_view command,
                              const json::object& arguments, bool out_of_band) {
    auto id = next_id_++;
    out += out_of_band ? "{\"exec-oob\":" : "{\"execute\":";
    out += json::serialize(json::string_view(command.data(), command.size()));
    if (!arguments.empty()) {
        out += ",\"arguments\":";
        out += json::serialize(arguments);
    }
    out += ",\"id\":";
    out += std::to_string(id);
    out += "}\r\n";
    return id;
}

std::optional<std::uint64_t> numeric_id(const json::value& id) noexcept {
    if (id.is_uint64())
        return id.get_uint64();
    if (id.is_int64() && id.get_int64() >= 0)
        return static_cast<std::uint64_t>(id.get_int64());
    return std::nullopt;
}

} // namespace localvm::qmp
