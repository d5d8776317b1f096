// The VM's state file: what a later process needs to find and judge a VM.
#pragma once

#include <localvm/manager.hpp>
#include <localvm/qemu/arguments.hpp>

#include <boost/system/error_code.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::qemu {

/// How a VM last ended.
enum class end_reason {
    none,           ///< It has not ended (or never ran).
    stopped,        ///< localvm's `stop` ended it.
    guest_shutdown, ///< The guest powered off by itself.
    crashed,        ///< QEMU exited with an error or died of a signal other than SIGKILL.
    killed,         ///< QEMU was killed (SIGKILL) by someone other than localvm.
};

/// The stable word for a reason: "none", "stopped", "guest-shutdown", "crashed", "killed".
std::string_view to_string(end_reason r) noexcept;

/// The step of `stop`'s escalation that ended QEMU.
enum class stop_step {
    none,      ///< Not ended by `stop` (or it ended before stop did anything).
    powerdown, ///< The guest powered off after the ACPI power button.
    agent,     ///< The guest powered off after its agent's `guest-shutdown`.
    quit,      ///< QEMU exited after QMP `quit`.
    sigterm,   ///< QEMU exited after SIGTERM.
    sigkill,   ///< QEMU was SIGKILLed.
};

/// The stable word for a step: "none", "powerdown", "agent", "quit",
/// "sigterm", "sigkill".
std::string_view to_string(stop_step s) noexcept;

/// A NIC on a virtual network, as the running VM has it.
struct nic_state {
    std::string network; ///< The network's name.
    std::string id;      ///< QEMU's device id ("vnic0"), what QMP `set_link` names.
    std::string mac;     ///< "xx:xx:xx:xx:xx:xx".
    std::string address; ///< "10.0.0.1/24"; empty: none.
    bool link_up = true; ///< The link as `manager::set_link` last set it.
};

/// What the state file records.
struct vm_state {
    std::int64_t pid = 0;                 ///< QEMU's pid when it was started.
    accelerator accel = accelerator::tcg; ///< The accelerator QEMU runs with.
    std::vector<port_forward> ports;      ///< Forwards with the host ports QEMU bound.
    std::int64_t started_at = 0;          ///< Unix time of the start, seconds.
    bool stopping = false;                ///< localvm's `stop` has begun (intent recorded).
    end_reason last_end = end_reason::none; ///< How the VM last ended.
    std::string last_end_detail;          ///< e.g. "exited 0", "signaled 9", QMP SHUTDOWN reason.
    std::int64_t ended_at = 0;            ///< Unix time of the end, seconds; 0 if running.
    stop_step stopped_by = stop_step::none; ///< With `end_reason::stopped`: the step that ended it.
    /// Automatic acceleration tried KVM first and restarted under TCG: why
    /// ("no console output within 20 s", QEMU's error naming KVM). Empty
    /// when no fallback happened at this start.
    std::string accel_fallback;
    std::vector<nic_state> nics;          ///< NICs on virtual networks (key omitted when none).
};

/// Renders `s` as a JSON object (one line, stable key order).
std::string render_state(const vm_state& s);

/// Parses a state file. On malformed input returns nullopt and sets `ec`
/// to `errc::protocol_error`.
std::optional<vm_state> parse_state(std::string_view json, boost::system::error_code& ec);

/// Judges how QEMU ended from the supervisor's exit status ("exited N" /
/// "signaled N") and whether localvm's stop was under way.
end_reason classify_end(std::string_view how, int number, bool stopping) noexcept;

} // namespace localvm::qemu
