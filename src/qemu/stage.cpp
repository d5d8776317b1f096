#include <localvm/qemu/stage.hpp>

namespace localvm::qemu {

std::string_view to_string(boot_stage s) noexcept {
    switch (s) {
    case boot_stage::qemu_spawned:
        return "qemu-spawned";
    case boot_stage::qmp_ready:
        return "qmp-ready";
    case boot_stage::guest_running:
        return "guest-running";
    case boot_stage::ssh_banner:
        return "ssh-banner";
    case boot_stage::ssh_login:
        return "ssh-login";
    case boot_stage::kvm_fallback:
        return "kvm-fallback";
    case boot_stage::agent_ready:
        return "agent-ready";
    case boot_stage::guest_clock:
        return "guest-clock";
    }
    return "unknown";
}

} // namespace localvm::qemu
