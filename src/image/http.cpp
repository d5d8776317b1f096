#include <localvm/image/http.hpp>

#include <charconv>

namespace localvm::image {
namespace {

std::optional<std::uint64_t> number(std::string_view s) {
    std::uint64_t v = 0;
    auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || err != std::errc() || end != s.data() + s.size())
        return std::nullopt;
    return v;
}

decision fail(errc code, std::string problem) {
    decision d;
    d.action = response_action::fail;
    d.code = code;
    d.problem = std::move(problem);
    return d;
}

decision restart() {
    decision d;
    d.action = response_action::restart;
    return d;
}

} // namespace

std::optional<content_range> parse_content_range(std::string_view v) {
    if (!v.starts_with("bytes "))
        return std::nullopt;
    v.remove_prefix(6);
    auto slash = v.find('/');
    if (slash == std::string_view::npos)
        return std::nullopt;
    auto range = v.substr(0, slash), length = v.substr(slash + 1);
    content_range cr;
    if (length != "*") {
        cr.complete_length = number(length);
        if (!cr.complete_length)
            return std::nullopt;
    }
    if (range == "*") {
        if (!cr.complete_length)
            return std::nullopt; // "bytes */*" says nothing
        return cr;
    }
    auto dash = range.find('-');
    if (dash == std::string_view::npos)
        return std::nullopt;
    cr.first = number(range.substr(0, dash));
    cr.last = number(range.substr(dash + 1));
    if (!cr.first || !cr.last || *cr.first > *cr.last)
        return std::nullopt;
    if (cr.complete_length && *cr.last >= *cr.complete_length)
        return std::nullopt;
    return cr;
}

std::optional<std::string> range_header(std::uint64_t offset) {
    if (offset == 0)
        return std::nullopt;
    return "bytes=" + std::to_string(offset) + "-";
}

decision decide(const response_facts& r, std::uint64_t offset, unsigned redirects,
                unsigned max_redirects) {
    const std::string status_line =
        "HTTP " + std::to_string(r.status) + (r.reason.empty() ? "" : " " + r.reason);
    switch (r.status) {
    case 301:
    case 302:
    case 303:
    case 307:
    case 308: {
        if (redirects >= max_redirects)
            return fail(errc::protocol_error,
                        "too many redirects (more than " + std::to_string(max_redirects) + ")");
        if (!r.location || r.location->empty())
            return fail(errc::protocol_error, status_line + " without a Location");
        decision d;
        d.action = response_action::redirect;
        d.location = *r.location;
        return d;
    }
    case 200: {
        decision d;
        d.action = response_action::write_body;
        d.offset = 0;
        d.total = r.content_length;
        return d;
    }
    case 206: {
        if (offset == 0 || !r.content_range)
            return restart();
        auto cr = parse_content_range(*r.content_range);
        if (!cr || !cr->first || *cr->first != offset)
            return restart();
        if (r.content_length && *r.content_length != *cr->last - *cr->first + 1)
            return restart();
        decision d;
        d.action = response_action::write_body;
        d.offset = offset;
        d.total = cr->complete_length;
        return d;
    }
    case 416: {
        if (offset == 0)
            return fail(errc::protocol_error, status_line + " to a request without a Range");
        if (r.content_range) {
            auto cr = parse_content_range(*r.content_range);
            if (cr && !cr->first && cr->complete_length == offset) {
                decision d;
                d.action = response_action::complete;
                d.offset = offset;
                d.total = offset;
                return d;
            }
        }
        return restart();
    }
    case 404:
    case 410:
        return fail(errc::not_found, status_line);
    default:
        return fail(errc::protocol_error, status_line);
    }
}

} // namespace localvm::image
