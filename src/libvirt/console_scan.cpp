#include "libvirt/console_scan.hpp"

#include <localvm/libvirt/client.hpp>

#include <vector>

#include "console/blank.hpp"

namespace localvm::libvirt::detail {

using console::detail::blank;

console_scan::console_scan(line_sink echo, std::size_t keep)
    : echo_(std::move(echo))
    , keep_(keep) {}

std::optional<std::string> console_scan::feed(std::string_view data,
                                              const console::text_matcher* matcher, bool partial) {
    std::vector<std::string> lines;
    splitter_.feed(data, lines);
    std::optional<std::string> found;
    for (auto& line : lines) {
        if (echo_)
            echo_("console: " + line);
        if (!found && matcher && matcher->matches(line))
            found = line;
        if (blank(line))
            continue;
        kept_.push_back(std::move(line));
        while (kept_.size() > keep_)
            kept_.pop_front();
    }
    if (!found && partial && matcher) {
        auto rest = splitter_.partial_line();
        if (!rest.empty() && matcher->matches(rest)) {
            // The wait ends with it: echoed now, as it will not be later.
            if (echo_)
                echo_("console: " + rest);
            found = std::move(rest);
        }
    }
    return found;
}

std::string console_scan::tail() const {
    std::string out;
    for (const auto& l : kept_) {
        if (!out.empty())
            out += '\n';
        out += l;
    }
    auto rest = splitter_.partial_line();
    if (!blank(rest)) {
        if (!out.empty())
            out += '\n';
        out += rest;
    }
    return out;
}

boost::asio::awaitable<std::optional<std::string>>
read_console(stream& s, console_scan& scan, const console::text_matcher* matcher, bool partial) {
    for (;;) {
        std::optional<std::string> data;
        try {
            data = co_await s.read();
        } catch (const call_error&) {
            co_return std::nullopt; // the daemon ended it with an error
        }
        if (!data)
            co_return std::nullopt;
        if (auto found = scan.feed(*data, matcher, partial))
            co_return found;
    }
}

} // namespace localvm::libvirt::detail
