// Internal: base64 (RFC 4648, standard alphabet, padded), the agent's
// encoding of every byte string (exec input and output, file data).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace localvm::qga::detail {

/// Appends the base64 encoding of `bytes` to `out`.
void base64_encode(std::string_view bytes, std::string& out);

/// The bytes `text` encodes, or nullopt when it is not padded base64 (glib,
/// which the agent uses, always pads). Whitespace is not accepted.
std::optional<std::string> base64_decode(std::string_view text);

} // namespace localvm::qga::detail
