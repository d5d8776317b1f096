// Forwards on a running QEMU: the HMP commands that add and remove them and
// what QEMU answers, as pure functions (the manager sends them through QMP's
// `human-monitor-command`).
#pragma once

#include <localvm/manager.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::qemu::detail {

/// Every TCP host forward in HMP `info usernet` text, in its order:
/// host address, host port (as bound: never 0) and guest port.
std::vector<port_forward> parse_usernet_forwards(std::string_view info_usernet);

/// "hostfwd_add tcp:ADDR:HOST-:GUEST" (QEMU binds a free port for HOST 0).
std::string hostfwd_add_command(const port_forward& f);

/// "hostfwd_remove tcp:ADDR:HOST".
std::string hostfwd_remove_command(const port_forward& f);

/// HMP's answer to `hostfwd_add`: "" when it worked (QEMU prints nothing),
/// else QEMU's words on one line ("Could not set up host forwarding rule
/// 'tcp:127.0.0.1:2222-:22'").
std::string hostfwd_add_failure(std::string_view reply);

/// Whether HMP's answer to `hostfwd_remove` says the rule was removed
/// ("host forwarding rule for tcp:... removed"; "... not found" otherwise).
bool hostfwd_removed(std::string_view reply);

/// The forwards in `after` that are not in `before` (a multiset
/// difference): what one `hostfwd_add` made, to find its port or undo it.
std::vector<port_forward> new_forwards(const std::vector<port_forward>& before,
                                       const std::vector<port_forward>& after);

/// Among `fresh` (see `new_forwards`), the one made for `wanted`: the same
/// host address and guest port, and the same host port unless `wanted`'s
/// is 0. nullopt when there is none.
std::optional<port_forward> made_for(const std::vector<port_forward>& fresh,
                                     const port_forward& wanted);

/// Whether two forwards listen on the same host address and port.
bool same_listener(const port_forward& a, const port_forward& b) noexcept;

} // namespace localvm::qemu::detail
