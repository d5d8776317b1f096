#include <localvm/error.hpp>
#include <localvm/qemu/accel.hpp>

#include "sys/errno.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace localvm::qemu {

std::string kvm_problem(arch a) {
#if defined(__x86_64__)
    const arch host = arch::amd64;
#elif defined(__aarch64__)
    const arch host = arch::arm64;
#else
    return "KVM: unsupported host architecture";
#endif
    if (a != host)
        return "KVM cannot run a guest of another architecture";
    int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return "/dev/kvm: " + sys::errno_text(errno);
    std::string problem;
    int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        problem = "/dev/kvm: unexpected API version " + std::to_string(version);
    } else {
        int vm = ::ioctl(fd, KVM_CREATE_VM, 0);
        if (vm < 0)
            problem = "/dev/kvm: cannot create a VM: " + sys::errno_text(errno);
        else
            ::close(vm);
    }
    ::close(fd);
    return problem;
}

accel_choice resolve_accelerator(accelerator requested, arch a,
                                 const std::filesystem::path& hang_marker) {
    if (requested == accelerator::tcg)
        return {accelerator::tcg, "tcg requested", false};
    if (requested == accelerator::kvm) {
        if (auto problem = kvm_problem(a); !problem.empty())
            throw_error(errc::unsupported, "accelerator kvm: " + problem);
        return {accelerator::kvm, "kvm requested", false};
    }
    if (const char* env = std::getenv("LOCALVM_ACCEL"); env && *env) {
        std::string v = env;
        if (v == "tcg")
            return {accelerator::tcg, "LOCALVM_ACCEL=tcg", false};
        if (v == "kvm")
            return resolve_accelerator(accelerator::kvm, a, hang_marker);
        if (v != "auto")
            throw_error(errc::invalid_argument,
                        "LOCALVM_ACCEL=" + v + ": expected kvm, tcg or auto");
    }
    if (auto problem = kvm_problem(a); !problem.empty())
        return {accelerator::tcg, problem + "; using tcg", false};
    std::error_code ec;
    if (std::filesystem::exists(hang_marker, ec))
        return {accelerator::tcg,
                "KVM hung an earlier boot on this host (" + hang_marker.string() + "); using tcg",
                false};
    return {accelerator::kvm, "/dev/kvm is usable", true};
}

namespace {

// Characters that continue a name or path: "kvm" right after one of them is
// part of something else ("/srv/kvm_images", "vm-kvm_1", "mykvm: ").
bool continues_name(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '.' ||
           c == '-' || c == '=';
}

} // namespace

bool names_kvm_failure(std::string_view text) noexcept {
    // Phrases of QEMU's KVM code (accel/kvm, target/*/kvm), lower-cased.
    static constexpr std::string_view phrases[] = {
        "kvm kernel module", "initialize kvm",     "kvm_",
        "kvm run failed",    "kvm internal error", "-accel kvm",
        "accel=kvm",         "requires kvm",       "kvm: ",
        "failed to set msr", "kvm is not",         "kvm not supported",
    };
    std::string lower;
    lower.reserve(text.size());
    for (char c : text)
        lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    for (auto phrase : phrases)
        for (auto pos = lower.find(phrase); pos != std::string::npos;
             pos = lower.find(phrase, pos + 1))
            if (!phrase.starts_with("kvm") || pos == 0 || !continues_name(lower[pos - 1]))
                return true;
    return false;
}

} // namespace localvm::qemu
