// localvm error model: one error category, one exception type.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <iosfwd>
#include <string>
#include <string_view>
#include <type_traits>

namespace localvm {

/// The error conditions localvm reports, in the `localvm` error category.
/// Codes are stable: new ones are only ever appended.
enum class errc {
    already_running = 1, ///< "VM is already running": start on a running VM.
    not_running,         ///< "VM is not running": stop, shell, console on a stopped VM.
    not_found,           ///< A file, image, VM or program does not exist.
    already_exists,      ///< create on a VM (or file) that already exists.
    invalid_argument,    ///< Input rejected before anything was done; the diagnostic names it.
    timeout,             ///< A deadline passed; the diagnostic names what was awaited.
    monitor_closed,      ///< The QMP connection ended (EOF, reset, or closed locally).
    qmp_error,           ///< QEMU answered a command with an error (class and desc kept).
    process_failed,      ///< A child process could not run or exited unsuccessfully.
    ssh_unreachable,     ///< SSH never became ready, or ssh could not connect (exit 255).
    unsupported,         ///< The host, QEMU or guest lacks a needed feature.
    protocol_error,      ///< A peer sent bytes that break its protocol (malformed QMP).
    message_too_large,   ///< A peer's message exceeded the configured size limit.
    guest_died,          ///< QEMU exited while something waited on the guest.
    io_error,            ///< A file system operation failed; the diagnostic has errno's text.
    // 16 was check_failed, now localvm::testing::kit_errc: the next code is `= 17`.
    libvirt_error = 17,  ///< A libvirt daemon answered a call with an error (its code, domain, message kept).
    libvirt_closed,      ///< The connection to a libvirt daemon ended (EOF, reset, keepalive, or closed locally).
    digest_mismatch,     ///< Downloaded bytes are not what their digest says; both digests named.
    busy,                ///< Another process holds what this call needs (an image being fetched).
};

/// The `localvm` error category (name "localvm"); a process-wide singleton.
const boost::system::error_category& category() noexcept;

/// Makes an error_code in the `localvm` category; found by ADL.
boost::system::error_code make_error_code(errc e) noexcept;

/// Writes the code's message, e.g. "timed out" (for logs and test output).
std::ostream& operator<<(std::ostream& os, errc e);

/// The exception every localvm call throws: a code for programs to test
/// (`e.code() == localvm::errc::timeout`) and a diagnostic for people (what
/// was run, exit status, tail of stderr or of the serial console).
/// `what()` gives both: "diagnostic: message".
class error : public boost::system::system_error {
public:
    /// An error with `code` and the human-readable `diagnostic` (may be empty).
    error(boost::system::error_code code, std::string diagnostic);
    /// An error with a localvm code and the human-readable `diagnostic`.
    error(errc code, std::string diagnostic);

    /// The diagnostic text alone, without the code's message.
    const std::string& diagnostic() const noexcept { return diagnostic_; }

private:
    std::string diagnostic_;
};

/// Throws `localvm::error{code, diagnostic}`.
[[noreturn]] void throw_error(errc code, std::string diagnostic);

/// Throws `localvm::error{code, diagnostic}`.
[[noreturn]] void throw_error(boost::system::error_code code, std::string diagnostic);

} // namespace localvm

namespace boost::system {
template <> struct is_error_code_enum<localvm::errc> : std::true_type {};
} // namespace boost::system
