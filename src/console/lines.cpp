#include <localvm/console/lines.hpp>
#include <localvm/console/log.hpp>

#include "console/blank.hpp"

namespace localvm::console {

using detail::blank;

void line_splitter::emit(std::string_view raw, std::vector<std::string>& out) {
    auto line = clean_line(raw);
    if (!blank(line))
        last_line_ = line;
    out.push_back(std::move(line));
}

void line_splitter::feed(std::string_view data, std::vector<std::string>& out) {
    while (!data.empty()) {
        auto nl = data.find('\n');
        auto piece = data.substr(0, nl);
        partial_raw_.append(piece);
        while (partial_raw_.size() >= max_line_length) {
            emit(std::string_view(partial_raw_).substr(0, max_line_length), out);
            partial_raw_.erase(0, max_line_length);
        }
        if (nl == std::string_view::npos)
            break;
        emit(partial_raw_, out);
        partial_raw_.clear();
        data.remove_prefix(nl + 1);
    }
}

std::string line_splitter::partial_line() const {
    return clean_line(partial_raw_);
}

std::string line_splitter::latest_line() const {
    auto partial = partial_line();
    return blank(partial) ? last_line_ : partial;
}

} // namespace localvm::console
