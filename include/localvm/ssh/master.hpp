// OpenSSH connection multiplexing: the master connection that `shell`,
// `wait_for_login` and `sync` share through `target::control_path`, and
// ending it.
//
// Why: under TCG a guest's SSH login (key exchange, authentication, sshd's
// re-exec, all emulated) takes seconds; a session over an existing master
// takes a fraction of that. The VM backends point `control_path` at the VM's
// runtime directory, so `wait_ready`'s login leaves a master behind that the
// first `shell` reuses, and end it when the VM stops or is removed.
//
// The master is an ssh process in the background, not our child: the ssh
// that logs in first forks it off after authentication (ControlPersist) in
// a session of its own (so a terminal's signals and a cancelled `shell` do
// not reach it) with stdin, stdout and stderr on /dev/null (so no caller
// waits for it to close their pipes: the ssh that made it returns as soon
// as its own command is done), and re-parented away from us (never our
// zombie). It ends when `target::control_persist` passes without a client,
// when its connection drops (QEMU exits), or with `end_master`.
#pragma once

#include <localvm/ssh/command.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace localvm::ssh {

/// The longest control path (bytes, '%' counted once) that multiplexing is
/// used with: ssh binds the master's socket at PATH plus a 17-byte random
/// suffix (".XXXXXXXXXXXXXXXX") before renaming it, and a unix socket path
/// holds at most 107 bytes (`sun_path` with its NUL). ssh gives up with an
/// error, rather than without multiplexing, on a longer one.
inline constexpr std::size_t max_control_path = 107 - 17;

/// True when ssh with `t` multiplexes (pure): `t.control_path` is set, at
/// most `max_control_path` bytes long, and `t.jump` is unset.
bool multiplexed(const target& t);

/// The argv of a control command to the master at `control_path` (pure):
/// `ssh -F none -o ControlMaster=no -o ControlPath=PATH -o LogLevel=ERROR
/// -O COMMAND -- localvm` (PATH escaped as in `ssh_argv`; the destination
/// is a placeholder: ssh only talks to the socket). `command` is one of
/// ssh's `-O` commands ("check", "exit", "stop").
std::vector<std::string> master_argv(const std::filesystem::path& control_path,
                                     std::string_view command);

/// The master's pid from what `ssh -O check` wrote to stderr ("Master
/// running (pid=1234)"), or nullopt (pure).
std::optional<pid_t> parse_master_pid(std::string_view check_stderr);

/// The master listening at `control_path` (`ssh -O check`, within
/// `timeout`): its pid, or nullopt when there is none (no socket, a stale
/// socket, an unusable path, ssh missing or failing). Never throws but
/// bad_alloc; cancellation terminates ssh and completes with
/// operation_aborted.
boost::asio::awaitable<std::optional<pid_t>> master_pid(std::filesystem::path control_path,
                                                        std::chrono::milliseconds timeout);

/// What `end_master` did.
enum class master_end {
    none,  ///< There was no socket at the path: nothing to do.
    ended, ///< A master ran; it has exited (socket gone).
    stale, ///< A socket nobody listens on (a master that was killed): removed.
    left,  ///< A master runs and did not end in time (see `end_master`).
};

/// Ends the master at `control_path`, best effort, within `timeout` (and
/// half a second for each of SIGTERM and SIGKILL past it): asks it to exit
/// (`ssh -O exit`), waits on its pid (a pidfd, no polling) until it has,
/// SIGTERMs then SIGKILLs it if it lingers, and removes the socket when no
/// master serves it. Its guest-side session ends with it (ssh sends
/// a disconnect). Returns what it did; a master that outlives `timeout`
/// (or one that cannot be asked) is `master_end::left`, never an exception.
/// Throws only bad_alloc. Cancellation completes with operation_aborted;
/// the master may then still run.
boost::asio::awaitable<master_end> end_master(std::filesystem::path control_path,
                                              std::chrono::milliseconds timeout);

} // namespace localvm::ssh
