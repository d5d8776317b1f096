// Where text output goes: lifecycle messages, child process output.
#pragma once

#include <functional>
#include <string_view>

namespace localvm {

/// Receives text one line at a time, without its trailing newline. Called on
/// the io_context's thread, in order; it must not block.
using line_sink = std::function<void(std::string_view line)>;

} // namespace localvm
