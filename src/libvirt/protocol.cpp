#include <localvm/error.hpp>
#include <localvm/libvirt/protocol.hpp>
#include <localvm/libvirt/xdr.hpp>

namespace localvm::libvirt {

void encode_message(std::string& out, const header& h, std::string_view payload) {
    xdr::writer w(out);
    w.u32(static_cast<std::uint32_t>(length_size + header_size + payload.size()));
    w.u32(h.program);
    w.u32(h.version);
    w.i32(h.procedure);
    w.i32(static_cast<std::int32_t>(h.type));
    w.u32(h.serial);
    w.i32(static_cast<std::int32_t>(h.status));
    out.append(payload);
}

std::optional<header> decode_header(std::string_view bytes) {
    xdr::reader r(bytes.substr(0, header_size));
    header h;
    h.program = r.u32();
    h.version = r.u32();
    h.procedure = r.i32();
    auto type = r.i32();
    h.serial = r.u32();
    auto status = r.i32();
    if (r.failed() || type < 0 || type > 6 || status < 0 || status > 2)
        return std::nullopt;
    h.type = static_cast<message_type>(type);
    h.status = static_cast<message_status>(status);
    return h;
}

frame_decoder::frame_decoder(std::size_t max_message_size)
    : max_(max_message_size) {}

std::optional<message> frame_decoder::consume(std::string_view& input,
                                              boost::system::error_code& ec) {
    ec.clear();
    if (failed_) {
        ec = failed_;
        return std::nullopt;
    }
    auto fail = [&](errc code, std::string why) -> std::optional<message> {
        failed_ = ec = code;
        problem_ = std::move(why);
        partial_.clear();
        return std::nullopt;
    };
    // The length word first, then exactly the rest of the message: never
    // more than one message is buffered, and nothing past it is taken.
    if (need_ == 0) {
        auto n = std::min(length_size - partial_.size(), input.size());
        partial_.append(input.substr(0, n));
        input.remove_prefix(n);
        if (partial_.size() < length_size)
            return std::nullopt;
        xdr::reader r(partial_);
        const std::uint32_t total = r.u32();
        if (total < length_size + header_size)
            return fail(errc::protocol_error,
                        "message length " + std::to_string(total) + " is shorter than a header (" +
                            std::to_string(length_size + header_size) + " bytes)");
        if (total - length_size > max_)
            return fail(errc::message_too_large, "message length " + std::to_string(total) +
                                                     " exceeds the limit of " +
                                                     std::to_string(max_) + " bytes");
        need_ = total;
        partial_.reserve(std::min<std::size_t>(total, 1u << 20));
    }
    auto n = std::min(need_ - partial_.size(), input.size());
    partial_.append(input.substr(0, n));
    input.remove_prefix(n);
    if (partial_.size() < need_)
        return std::nullopt;
    std::string_view whole(partial_);
    auto h = decode_header(whole.substr(length_size));
    if (!h)
        return fail(errc::protocol_error, "message header with an unknown type or status");
    message m{*h, std::string(whole.substr(length_size + header_size))};
    partial_.clear();
    need_ = 0;
    return m;
}

namespace {

void skip_nonnull_string(xdr::reader& r) {
    r.string();
}

} // namespace

std::optional<remote_error> decode_error(std::string_view payload, std::string& problem) {
    xdr::reader r(payload);
    remote_error e;
    e.code = r.i32();
    e.domain = r.i32();
    e.message = r.optional_string();
    e.level = r.i32();
    if (r.boolean()) { // virNetMessageDomain: name, uuid, id (unused)
        skip_nonnull_string(r);
        r.fixed_opaque<16>();
        r.i32();
    }
    e.str1 = r.optional_string();
    e.str2 = r.optional_string();
    e.str3 = r.optional_string();
    e.int1 = r.i32();
    e.int2 = r.i32();
    if (r.boolean()) { // virNetMessageNetwork: name, uuid (unused)
        skip_nonnull_string(r);
        r.fixed_opaque<16>();
    }
    r.expect_end();
    if (r.failed()) {
        problem = "bad libvirt error payload: " + r.problem();
        return std::nullopt;
    }
    return e;
}

std::string encode_error(const remote_error& e) {
    std::string out;
    xdr::writer w(out);
    w.i32(e.code);
    w.i32(e.domain);
    w.optional_string(e.message);
    w.i32(e.level);
    w.boolean(false);
    w.optional_string(e.str1);
    w.optional_string(e.str2);
    w.optional_string(e.str3);
    w.i32(e.int1);
    w.i32(e.int2);
    w.boolean(false);
    return out;
}

} // namespace localvm::libvirt
