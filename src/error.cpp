#include <localvm/error.hpp>

#include <ostream>

namespace localvm {
namespace {

class category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "localvm"; }

    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::already_running: return "VM is already running";
        case errc::not_running: return "VM is not running";
        case errc::not_found: return "not found";
        case errc::already_exists: return "already exists";
        case errc::invalid_argument: return "invalid argument";
        case errc::timeout: return "timed out";
        case errc::monitor_closed: return "QMP monitor connection closed";
        case errc::qmp_error: return "QMP command failed";
        case errc::process_failed: return "child process failed";
        case errc::ssh_unreachable: return "SSH is unreachable";
        case errc::unsupported: return "not supported";
        case errc::protocol_error: return "protocol error";
        case errc::message_too_large: return "message too large";
        case errc::guest_died: return "QEMU exited";
        case errc::io_error: return "I/O error";
        case errc::libvirt_error: return "libvirt call failed";
        case errc::libvirt_closed: return "libvirt connection closed";
        case errc::digest_mismatch: return "digest mismatch";
        case errc::busy: return "in use by another process";
        }
        return "unknown localvm error " + std::to_string(ev);
    }
};

} // namespace

const boost::system::error_category& category() noexcept {
    static const category_impl instance;
    return instance;
}

boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), category()};
}

std::ostream& operator<<(std::ostream& os, errc e) {
    return os << make_error_code(e).message();
}

error::error(boost::system::error_code code, std::string diagnostic)
    : boost::system::system_error(code, diagnostic)
    , diagnostic_(std::move(diagnostic)) {}

error::error(errc code, std::string diagnostic)
    : error(make_error_code(code), std::move(diagnostic)) {}

void throw_error(errc code, std::string diagnostic) {
    throw error(code, std::move(diagnostic));
}

void throw_error(boost::system::error_code code, std::string diagnostic) {
    throw error(code, std::move(diagnostic));
}

} // namespace localvm
