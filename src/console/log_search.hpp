// Internal: searching what a console log reader has not read yet, shared by
// `wait_for_console` and the libvirt backend's wait (the boot's history
// before its console stream opened).
#pragma once

#include <localvm/console/log.hpp>
#include <localvm/console/wait.hpp>

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>

namespace localvm::console::detail {

/// Reads `reader` up to the end of its file, one bounded chunk
/// (`read_lines`' budget) per turn of the io_context, so that a huge log
/// does not stall other coroutines, and returns the first line `matcher`
/// matches; with `match_partial_line`, then the unfinished last line if it
/// matches. nullopt when nothing does. Throws as `console_log::read_lines`.
boost::asio::awaitable<std::optional<std::string>>
find_in_log(console_log& reader, const text_matcher& matcher, bool match_partial_line);

} // namespace localvm::console::detail
