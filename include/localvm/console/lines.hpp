// Splitting console bytes into lines: the one splitter behind the console
// log follower (log.hpp) and a console read from any other byte stream (a
// libvirt console stream).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::console {

/// Turns console bytes, fed in pieces of any size, into cleaned lines
/// (`clean_line`: no '\r', no escape sequences, valid UTF-8). A line is
/// complete at '\n'; a line longer than 64 KiB is cut into 64 KiB pieces,
/// each emitted as a line. Sans-io: no I/O, never throws beyond
/// std::bad_alloc.
class line_splitter {
public:
    /// The longest line emitted whole, in bytes before cleaning.
    static constexpr std::size_t max_line_length = 64 * 1024;

    /// Appends the lines `data` completes (cleaned, without '\n') to `out`.
    void feed(std::string_view data, std::vector<std::string>& out);

    /// The text after the last '\n' fed so far (a prompt such as "login: "
    /// that waits for input), cleaned; "" when none.
    std::string partial_line() const;

    /// The most recent non-blank line, the partial one included; "" when
    /// none yet.
    std::string latest_line() const;

    /// Forgets the partial line (the source restarted, e.g. a new file).
    void drop_partial() noexcept { partial_raw_.clear(); }

private:
    void emit(std::string_view raw, std::vector<std::string>& out);
    std::string partial_raw_;
    std::string last_line_;
};

} // namespace localvm::console
