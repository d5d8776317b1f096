#include "fallback.hpp"

namespace localvm::qemu::detail {
namespace {

std::string seconds_text(std::chrono::milliseconds d) {
    auto ms = d.count();
    if (ms % 1000 == 0)
        return std::to_string(ms / 1000) + " s";
    return std::to_string(ms) + " ms";
}

} // namespace

std::string spawned_detail(pid_t pid, const accel_choice& choice,
                           std::chrono::milliseconds watchdog) {
    std::string out = "pid " + std::to_string(pid) + ", ";
    if (choice.accel == accelerator::kvm && choice.watch_boot)
        return out + "kvm attempt (" + choice.reason + "; tcg if the guest stays silent for " +
               seconds_text(watchdog) + ")";
    out += to_string(choice.accel);
    return choice.reason.empty() ? out : out + " (" + choice.reason + ")";
}

std::string fallback_reason(std::string_view error, std::string_view qemu_output,
                            std::chrono::milliseconds watchdog) {
    if (error.empty())
        return "no console output within " + seconds_text(watchdog);
    std::string line(error.substr(0, error.find('\n')));
    for (std::size_t at = 0; at < qemu_output.size();) {
        auto end = qemu_output.find('\n', at);
        auto candidate = qemu_output.substr(at, end == std::string_view::npos ? end : end - at);
        if (names_kvm_failure(candidate)) {
            line = std::string(candidate);
            break;
        }
        if (end == std::string_view::npos)
            break;
        at = end + 1;
    }
    for (auto& c : line)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            c = ' ';
    return line;
}

} // namespace localvm::qemu::detail
