#include <localvm/error.hpp>
#include <localvm/qga/commands.hpp>

#include <boost/json/array.hpp>

#include <limits>

#include "base64.hpp"

namespace localvm::qga {

namespace json = boost::json;
using boost::system::error_code;

namespace {

template <class T> std::optional<T> bad(error_code& ec) {
    ec = make_error_code(errc::protocol_error);
    return std::nullopt;
}

std::optional<std::int64_t> as_int(const json::value* v) {
    if (!v)
        return std::nullopt;
    if (v->is_int64())
        return v->get_int64();
    if (v->is_uint64() &&
        v->get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return static_cast<std::int64_t>(v->get_uint64());
    return std::nullopt;
}

std::optional<int> as_small_int(const json::value* v) {
    auto x = as_int(v);
    if (!x || *x < std::numeric_limits<int>::min() || *x > std::numeric_limits<int>::max())
        return std::nullopt;
    return static_cast<int>(*x);
}

// An optional boolean member: absent is false, anything but a bool is bad.
bool get_flag(const json::object& o, std::string_view key, bool& out) {
    auto* v = o.if_contains(key);
    if (!v)
        return true;
    if (!v->is_bool())
        return false;
    out = v->get_bool();
    return true;
}

// An optional base64 member, decoded; absent is empty.
bool get_b64(const json::object& o, std::string_view key, std::string& out) {
    auto* v = o.if_contains(key);
    if (!v)
        return true;
    auto* s = v->if_string();
    if (!s)
        return false;
    auto d = detail::base64_decode(std::string_view(s->data(), s->size()));
    if (!d)
        return false;
    out = std::move(*d);
    return true;
}

json::string b64(std::string_view bytes) {
    std::string s;
    detail::base64_encode(bytes, s);
    return json::string(s);
}

json::array strings(auto first, auto last) {
    json::array a;
    for (; first != last; ++first)
        a.emplace_back(json::string(*first));
    return a;
}

} // namespace

request make_ping() {
    return {"guest-ping", {}, true};
}

request make_exec(const exec_request& r) {
    request q{"guest-exec", {}, true};
    if (!r.argv.empty()) {
        q.arguments["path"] = r.argv.front();
        if (r.argv.size() > 1)
            q.arguments["arg"] = strings(r.argv.begin() + 1, r.argv.end());
    }
    if (!r.env.empty())
        q.arguments["env"] = strings(r.env.begin(), r.env.end());
    if (r.input)
        q.arguments["input-data"] = b64(*r.input);
    q.arguments["capture-output"] = r.capture_output;
    return q;
}

request make_exec_status(std::int64_t pid) {
    request q{"guest-exec-status", {}, true};
    q.arguments["pid"] = pid;
    return q;
}

request make_file_open(std::string_view path, std::string_view mode) {
    request q{"guest-file-open", {}, true};
    q.arguments["path"] = path;
    q.arguments["mode"] = mode;
    return q;
}

request make_file_read(std::int64_t handle, std::size_t count) {
    request q{"guest-file-read", {}, true};
    q.arguments["handle"] = handle;
    q.arguments["count"] = static_cast<std::uint64_t>(count);
    return q;
}

request make_file_write(std::int64_t handle, std::string_view bytes) {
    request q{"guest-file-write", {}, true};
    q.arguments["handle"] = handle;
    q.arguments["buf-b64"] = b64(bytes);
    return q;
}

request make_file_close(std::int64_t handle) {
    request q{"guest-file-close", {}, true};
    q.arguments["handle"] = handle;
    return q;
}

request make_network_get_interfaces() {
    return {"guest-network-get-interfaces", {}, true};
}

request make_set_time(std::optional<std::chrono::nanoseconds> since_epoch) {
    request q{"guest-set-time", {}, true};
    if (since_epoch)
        q.arguments["time"] = static_cast<std::int64_t>(since_epoch->count());
    return q;
}

request make_shutdown(shutdown_mode mode) {
    request q{"guest-shutdown", {}, false};
    q.arguments["mode"] = mode == shutdown_mode::halt     ? "halt"
                          : mode == shutdown_mode::reboot ? "reboot"
                                                          : "powerdown";
    return q;
}

std::optional<std::int64_t> parse_exec_pid(const json::value& result, error_code& ec) {
    ec = {};
    auto* o = result.if_object();
    auto pid = o ? as_int(o->if_contains("pid")) : std::nullopt;
    if (!pid)
        return bad<std::int64_t>(ec);
    return pid;
}

std::optional<exec_status> parse_exec_status(const json::value& result, error_code& ec) {
    ec = {};
    auto* o = result.if_object();
    auto* exited = o ? o->if_contains("exited") : nullptr;
    if (!exited || !exited->is_bool())
        return bad<exec_status>(ec);
    exec_status s;
    s.exited = exited->get_bool();
    if (auto* c = o->if_contains("exitcode")) {
        s.exit_code = as_small_int(c);
        if (!s.exit_code)
            return bad<exec_status>(ec);
    }
    if (auto* c = o->if_contains("signal")) {
        s.signal = as_small_int(c);
        if (!s.signal)
            return bad<exec_status>(ec);
    }
    if (!get_b64(*o, "out-data", s.out) || !get_b64(*o, "err-data", s.err) ||
        !get_flag(*o, "out-truncated", s.out_truncated) ||
        !get_flag(*o, "err-truncated", s.err_truncated))
        return bad<exec_status>(ec);
    return s;
}

std::optional<std::int64_t> parse_file_handle(const json::value& result, error_code& ec) {
    ec = {};
    auto h = as_int(&result);
    if (!h)
        return bad<std::int64_t>(ec);
    return h;
}

std::optional<file_chunk> parse_file_read(const json::value& result, error_code& ec) {
    ec = {};
    auto* o = result.if_object();
    auto count = o ? as_int(o->if_contains("count")) : std::nullopt;
    auto* eof = o ? o->if_contains("eof") : nullptr;
    file_chunk c;
    if (!count || !eof || !eof->is_bool() || !get_b64(*o, "buf-b64", c.data) ||
        c.data.size() != static_cast<std::uint64_t>(*count))
        return bad<file_chunk>(ec);
    c.eof = eof->get_bool();
    return c;
}

std::optional<std::size_t> parse_file_write(const json::value& result, error_code& ec) {
    ec = {};
    auto* o = result.if_object();
    auto count = o ? as_int(o->if_contains("count")) : std::nullopt;
    if (!count || *count < 0)
        return bad<std::size_t>(ec);
    return static_cast<std::size_t>(*count);
}

std::optional<std::vector<network_interface>> parse_network_interfaces(const json::value& result,
                                                                       error_code& ec) {
    ec = {};
    using out_t = std::vector<network_interface>;
    auto* a = result.if_array();
    if (!a)
        return bad<out_t>(ec);
    out_t out;
    for (auto& v : *a) {
        auto* o = v.if_object();
        auto* name = o ? o->if_contains("name") : nullptr;
        if (!name || !name->is_string())
            return bad<out_t>(ec);
        network_interface n;
        n.name = name->get_string();
        if (auto* hw = o->if_contains("hardware-address")) {
            if (!hw->is_string())
                return bad<out_t>(ec);
            n.hardware_address = hw->get_string();
        }
        if (auto* ips = o->if_contains("ip-addresses")) {
            auto* ia = ips->if_array();
            if (!ia)
                return bad<out_t>(ec);
            for (auto& x : *ia) {
                auto* xo = x.if_object();
                auto* type = xo ? xo->if_contains("ip-address-type") : nullptr;
                auto* addr = xo ? xo->if_contains("ip-address") : nullptr;
                auto prefix = xo ? as_small_int(xo->if_contains("prefix")) : std::nullopt;
                if (!type || !type->is_string() || !addr || !addr->is_string() || !prefix)
                    return bad<out_t>(ec);
                n.addresses.push_back(
                    {std::string(type->get_string()), std::string(addr->get_string()), *prefix});
            }
        }
        out.push_back(std::move(n));
    }
    return out;
}

} // namespace localvm::qga
