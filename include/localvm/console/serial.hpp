// Attaching a terminal to a VM's serial console (or to any QEMU socket
// chardev with a person at the other end, such as the HMP monitor).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <unistd.h>

namespace localvm::console {

/// How `attach` bridges the console with a terminal.
struct attach_options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    attach_options() = default;
    /// Read keystrokes from this fd; default stdin. Not closed; it is dup'd,
    /// and its file status flags (O_NONBLOCK) are restored on return.
    int input_fd = STDIN_FILENO;
    /// Write console output to this fd; default stdout. Same as `input_fd`.
    /// Writing to a closed pipe raises SIGPIPE: programs should ignore it.
    int output_fd = STDOUT_FILENO;
    /// When `input_fd` is a terminal, put it in raw mode (no echo, no line
    /// editing, no signals from ^C: every byte goes to the guest) and restore
    /// its exact termios on every way out. Default true.
    bool raw_mode = true;
    /// The byte that detaches when typed; default Ctrl-] (0x1d), nullopt for
    /// none. Bytes before it in the same read are still sent; it is not.
    std::optional<unsigned char> escape = 0x1d;
    /// Written to `output_fd`, followed by "\r\n", once connected; default ""
    /// (nothing). `attach_hint(name)` gives the usual one.
    std::string hint;
    /// What the socket is, for diagnostics ("nothing listens on the serial
    /// console socket ..."). Default "serial console"; `qemu::manager`'s
    /// `attach_monitor` sets "QEMU monitor".
    std::string endpoint = "serial console";
};

/// Why `attach` returned.
enum class attach_end {
    detached,     ///< The escape byte was typed.
    input_closed, ///< `input_fd` reached end of file (or its terminal hung up).
    vm_closed,    ///< The console socket closed: QEMU exited or dropped us.
};

/// "Connected to the <endpoint> of <vm_name>; Ctrl-] detaches." (endpoint
/// defaults to "serial console").
std::string attach_hint(std::string_view vm_name, std::string_view endpoint = "serial console");

/// Connects to the serial console socket `socket` (QEMU's `-chardev
/// socket,server=on`; any such chardev, e.g. an HMP monitor, works the
/// same way) and copies bytes both ways between it and the
/// terminal on the caller's io_context, until the escape byte is typed, the
/// input ends, or the socket closes; see `attach_end`. The terminal's
/// termios and fd flags are restored on every exit, exceptions and
/// cancellation included.
///
/// QEMU serves one client at a time: while another client is attached, the
/// connection succeeds but stays silent until that client leaves. Programs
/// wanting the boot log should read the log file (`console_log`), not attach.
///
/// Throws `localvm::error` (diagnostics name `options.endpoint`):
/// `errc::not_running` when nothing listens on `socket` (missing, or
/// connection refused); `errc::invalid_argument` for a
/// path too long for a unix socket or a bad fd; `errc::io_error` when the
/// socket or the terminal fails otherwise. Cancellation disconnects, restores
/// the terminal and completes with `boost::asio::error::operation_aborted`.
boost::asio::awaitable<attach_end> attach(std::filesystem::path socket,
                                          attach_options options = attach_options());

} // namespace localvm::console
