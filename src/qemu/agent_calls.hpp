// Internal: the QEMU backend's calls through the guest agent, on a
// connected `qga::client` (the manager connects it to the VM's agent
// socket; the tests to Debian's qemu-ga run on the host). What the public
// `qemu::manager` promises about them is documented there.
#pragma once

#include <localvm/qemu/agent.hpp>
#include <localvm/qga/client.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace localvm::qemu::detail {

/// How long the clean-up after a timeout or cancellation (killing a guest
/// program, closing a guest file, removing a guest temporary file) may take.
inline constexpr std::chrono::milliseconds agent_cleanup_timeout{5000};

/// Runs `argv` in the guest and waits for its exit, polling
/// `guest-exec-status`. On timeout or cancellation, kills it (`kill -9` of
/// its pid, itself run by `guest-exec` through `sh`), collects its status
/// so the agent forgets it, and throws `errc::timeout` naming the program
/// and pid (or `operation_aborted`).
boost::asio::awaitable<exec_result> agent_exec(qga::client& agent, std::vector<std::string> argv,
                                               exec_options opts);

/// Host file `from` to guest path `to`: into a guest temporary file beside
/// `to`, chunk by chunk, then `chmod` (the host file's permission bits) and
/// `mv` over `to` in one `guest-exec` of `sh`. Any failure, timeout or
/// cancellation removes the guest temporary file.
boost::asio::awaitable<void> agent_copy_in(qga::client& agent, std::filesystem::path from,
                                           std::string to, copy_options opts);

/// Guest file `from` to host path `to`: its mode from `stat` (run by
/// `guest-exec`), then chunk by chunk into an `atomic_file` committed with
/// that mode. A missing guest file is `errc::not_found`.
boost::asio::awaitable<void> agent_copy_out(qga::client& agent, std::string from,
                                            std::filesystem::path to, copy_options opts);

/// Connects to the agent socket `path` and pings until the agent answers
/// (each attempt bounded, growing from 250 ms to 2 s) or `timeout` passes:
/// `errc::timeout` saying the agent never answered.
boost::asio::awaitable<void> agent_wait_ready(std::string path, std::chrono::milliseconds timeout);

/// Connects to the agent socket `path` and sends `guest-shutdown`
/// (powerdown), all within `timeout`. Throws what the client throws.
boost::asio::awaitable<void> agent_shutdown(std::string path, std::chrono::milliseconds timeout);

} // namespace localvm::qemu::detail
