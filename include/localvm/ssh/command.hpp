// Commands in a guest over ssh, and files into it with rsync over ssh.
#pragma once

#include <localvm/commands.hpp>
#include <localvm/output.hpp>
#include <localvm/ssh/probe.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace localvm::ssh {

/// A host between this one and the target that ssh goes through: the
/// target's host and port are then as the jump host sees them (e.g. a
/// forward bound on the jump host's 127.0.0.1). ssh reaches the target with
/// `ProxyCommand=ssh ... -W %h:%p -- user@host`, a second ssh with the same
/// hardened options as the first (`-F none`, BatchMode, this identity and
/// known_hosts file, StrictHostKeyChecking=accept-new), because `-J` would
/// pass neither `-i` nor `-o` to the hop. ssh runs a ProxyCommand with the
/// user's `$SHELL -c` (any POSIX-quoting shell: bash, dash, zsh, fish).
struct jump_host {
    /// A host name or IP address, as `target::host`.
    std::string host;
    std::uint16_t port = 22; ///< The jump host's sshd. Default 22.
    /// As `target::user`; empty lets ssh use the local user's name.
    std::string user;
    /// Required: the private key for the jump host (same rules as
    /// `target::identity_file`).
    std::filesystem::path identity_file;
    /// Required: the known_hosts file for the jump host (same rules as
    /// `target::known_hosts_file`; it may be the user's own, as for
    /// libvirt's ssh URIs: keys are accepted on first use, then insisted on).
    std::filesystem::path known_hosts_file;
    /// The hop's ConnectTimeout (whole seconds, rounded up). Default 10 s.
    std::chrono::milliseconds connect_timeout{10000};
};

/// Where and as whom to log in.
///
/// Host keys: with `known_host_keys` given (pinned, the VM backend's
/// default), `shell`, `wait_for_login` and `sync` rewrite `known_hosts_file`
/// with exactly those keys before each run of ssh, and ssh accepts no other
/// (StrictHostKeyChecking=yes). With `known_host_keys` empty, ssh trusts the
/// first key it sees (StrictHostKeyChecking=accept-new) and insists on it
/// until the file is reset (`reset_known_hosts`; the VM backend removes the
/// file at each start, as such guests may make new keys on every boot).
///
/// Configuration: ssh runs with `-F none` (neither ~/.ssh/config nor
/// /etc/ssh/ssh_config is read) and with agent and X11 forwarding,
/// LocalCommand and the global known_hosts files off; control masters too,
/// unless `control_path` is set (see there).
struct target {
    /// Default 127.0.0.1 (the hostfwd side). A host name or IP address:
    /// letters, digits, '.', ':', '_' and '-', not starting with '-'.
    std::string host = "127.0.0.1";
    std::uint16_t port = 0; ///< Required (the forwarded SSH port).
    /// Default "debian". 1-32 letters, digits, '_', '.' and '-', not starting
    /// with '-' or '.'; empty lets ssh use the local user's name.
    std::string user = "debian";
    /// Required: the private key (-i, IdentitiesOnly). Spaces and quotes
    /// are fine; '%' and "${" are not (ssh expands them after checking the
    /// file exists, so no escape works), nor a leading '~'.
    std::filesystem::path identity_file;
    /// Required: this VM's own known_hosts file (never /dev/null, never the
    /// user's ~/.ssh/known_hosts). Spaces, quotes and '%' are fine; "${" is
    /// not (ssh would expand it as an environment variable).
    std::filesystem::path known_hosts_file;
    /// ssh's ConnectTimeout (whole seconds, rounded up; at least 1 s).
    /// Default 10 s.
    std::chrono::milliseconds connect_timeout{10000};
    /// Host key lines as in a `.pub` file ("ssh-ed25519 AAAA... comment") to
    /// pin, each on one line. Default empty: trust on first use.
    std::vector<std::string> known_host_keys;
    /// Reach `host:port` through this host (see `jump_host`). Default none:
    /// ssh connects directly.
    std::optional<jump_host> jump;
    /// Connection multiplexing (OpenSSH's ControlMaster, see
    /// localvm/ssh/master.hpp): the unix socket of a master connection that
    /// `shell`, `wait_for_login` and `sync` share. The first of them to log
    /// in becomes the master and stays in the background (its own session,
    /// stdio on /dev/null) until `control_persist` passes without a client,
    /// its connection drops, or `end_master`; the later ones open a session
    /// over it with no key exchange or authentication. The master's
    /// connection is made with this target's host key policy; its clients
    /// trust it. Must be an absolute path in a directory only this user can
    /// reach (the VM backend's runtime directory); '%' is fine, "${" is not.
    /// Default empty: no multiplexing (`ControlMaster=no`,
    /// `ControlPath=none`), and so too when the path is longer than
    /// `max_control_path`, or with `jump` (ssh sends the ProxyCommand's
    /// stderr to /dev/null under ControlPersist, hiding the hop's errors).
    std::filesystem::path control_path;
    /// How long an idle master waits for its next client (ControlPersist,
    /// whole seconds, rounded up; at least 1 s). Default 10 minutes.
    std::chrono::milliseconds control_persist{std::chrono::minutes(10)};
};

/// Quotes `word` for a POSIX shell: returned as is when it consists only of
/// characters no shell treats specially, else in single quotes (a quote in
/// it becomes '\''). The empty word becomes ''. Never throws but bad_alloc.
std::string shell_quote(std::string_view word);

/// Joins `argv` into one command line for the remote shell, each word
/// quoted with `shell_quote`, so that the remote program gets exactly these
/// arguments. Use it to pass an argv to `shell`.
std::string shell_join(const std::vector<std::string>& argv);

/// The key exchange the connection to a guest asks for first (ssh's `^`:
/// at the head of its default list, whose other methods stay offered):
/// X25519. OpenSSH 9's default, the post-quantum hybrid
/// sntrup761x25519-sha512, costs the guest about 0.3 s per login under TCG
/// (a cloud clone's first login: 0.73 s after the banner instead of
/// 1.1-1.3 s). The connection stays on this host (a forward on its
/// address) or runs inside the jump hop's connection, which keeps ssh's
/// default; see SECURITY.md.
inline constexpr std::string_view guest_kex_algorithms =
    "KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org";

/// The ssh argument vector (pure): `ssh -F none -p PORT -i IDENTITY -o
/// IdentitiesOnly=yes -o BatchMode=yes -o ForwardAgent=no -o ForwardX11=no
/// -o ControlMaster=no -o ControlPath=none -o PermitLocalCommand=no -o
/// GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile=FILE -o
/// StrictHostKeyChecking=accept-new|yes -o ConnectTimeout=N -o
/// `guest_kex_algorithms` -o LogLevel=ERROR -- user@host command` (`yes`
/// when `t.known_host_keys` is
/// not empty). `interactive` puts `-t` in place of BatchMode (so passphrase
/// or password prompts still work). An empty `command` ends the vector at
/// user@host (a login shell). After `--` ssh parses no options, so neither
/// the destination nor a command starting with '-' can be one. `command` is
/// passed as one word; ssh hands it to the remote user's shell, which parses
/// it. Paths are escaped for ssh's own expansion (a `%` is doubled; the
/// known_hosts path is quoted for ssh's option parser). With `t.jump`,
/// `-o ProxyCommand=CMD` follows LogLevel, CMD being the jump hop's ssh
/// (`ssh -F none -p PORT -i KEY ... -o LogLevel=ERROR -W %h:%p --
/// user@host`, without `guest_kex_algorithms`: the hop crosses the
/// network; each word quoted with `shell_quote` and every '%' but those
/// of `%h:%p` doubled). With a usable `t.control_path` (`multiplexed(t)`),
/// `-o ControlMaster=auto -o ControlPath=PATH -o ControlPersist=N` take the
/// place of `ControlMaster=no -o ControlPath=none` (PATH escaped and quoted
/// as the known_hosts path). Does not validate (see `shell`).
std::vector<std::string> ssh_argv(const target& t, std::string_view command,
                                  bool interactive = false);

/// The contents `reset_known_hosts` writes: one "[host]:port key" line per
/// entry of `t.known_host_keys` ("host key" for port 22); empty without keys.
std::string known_hosts_content(const target& t);

/// Replaces `t.known_hosts_file` atomically with `known_hosts_content(t)`,
/// forgetting the keys of the guest's previous boot. Throws `localvm::error`
/// (`errc::io_error`) naming the path; `errc::invalid_argument` if unset.
void reset_known_hosts(const target& t);

/// The value types are localvm's own (localvm/commands.hpp), also named
/// here: `localvm::manager` hands them through unchanged.
using localvm::shell_options;
using localvm::shell_result;
using localvm::sync_direction;
using localvm::sync_options;

/// Runs `command` in the guest (`ssh_argv(t, command)`, stdin /dev/null)
/// and returns its exit status: a failing remote command is a result, not
/// an exception. An empty `command` opens an interactive login shell on the
/// caller's terminal instead (`opts.input_fd`, `output_fd` and `error_fd`,
/// by default stdin, stdout and stderr, handed to ssh with `-t`), and
/// returns the exit status of the session (of the remote shell's last
/// command, or of its `exit N`); sinks are then unused.
///
/// Throws `localvm::error`: `errc::invalid_argument` for an unset port,
/// identity or known_hosts file, or a user or host name as `target` forbids;
/// `errc::io_error` when pinned keys cannot be written to the known_hosts
/// file; `errc::ssh_unreachable` when ssh exits with
/// 255 (it could not connect or authenticate; a remote command that itself
/// exits 255 is indistinguishable and reported the same way), with the
/// tail of ssh's stderr, and saying "the guest's SSH host key did not match"
/// when ssh refused the server's host key (not for an interactive session,
/// whose stderr is the terminal); `errc::timeout` when `opts.timeout` passes;
/// `errc::not_found` when ssh is not installed; `errc::process_failed`
/// when ssh cannot be run or is killed by a signal.
/// Cancellation terminates ssh (SIGTERM, then SIGKILL; after 300 ms for a
/// client of a control master, which lives on) and completes with
/// `operation_aborted`. Without a pty, the remote command is not signalled
/// when ssh ends; it gets EOF/SIGPIPE on its next write.
boost::asio::awaitable<shell_result> shell(target t, std::string command,
                                           shell_options opts = shell_options());

/// Knobs of `wait_for_login`. Every duration must be positive.
struct login_options {
    std::chrono::milliseconds timeout{60000};           ///< Overall deadline. Default 60 s.
    std::chrono::milliseconds retry_interval{100};      ///< First pause, doubling. Default 100 ms.
    std::chrono::milliseconds max_retry_interval{1000}; ///< Cap of the pause. Default 1 s.
};

/// Second readiness stage: runs `ssh ... true` (BatchMode) until it
/// succeeds, for guests whose sshd answers before the user's key is in
/// place. Returns once a login worked. `abort` is raced against the whole
/// wait as in `wait_for_banner` (`errc::guest_died`). Throws
/// `localvm::error`: `errc::ssh_unreachable` when the deadline passes,
/// with the last attempt's stderr, and at once (no further attempts) when
/// ssh refused the server's host key, saying "the guest's SSH host key did
/// not match"; as `shell` for invalid targets.
/// Cancellation terminates the running ssh and completes with `operation_aborted`.
boost::asio::awaitable<void> wait_for_login(target t, login_options opts = login_options(),
                                            abort_hook abort = {});

/// Quotes `word` for rsync's own `-e` command splitting: as is when it has
/// no space or quote, else in single quotes with each ' doubled.
std::string rsync_quote(std::string_view word);

/// The rsync argument vector (pure): `rsync -a [--delete] [--chown=C]
/// [--exclude=E]... --rsync-path=RSYNC_PATH -e "SSH" -- from user@host:to`,
/// where SSH is `ssh_argv`'s options (up to LogLevel) joined with
/// `rsync_quote`. A relative `from` gets a leading "./" (unless it has one),
/// so that rsync reads "a:b" as a local file, not a host. `from` keeps
/// rsync's meaning of a trailing slash (copy the directory's contents rather
/// than the directory).
///
/// With `sync_direction::from_guest` the last two are `user@host:from to`,
/// the local `to` getting the "./" as `from` does above, and `--safe-links`
/// comes after `-a`: the guest is the sender then, and a symbolic link it
/// sends that points outside the copied tree (`/home/me/.ssh`, `../..`) is
/// not created on the host.
std::vector<std::string> rsync_argv(const target& t, const std::string& from, const std::string& to,
                                    const sync_options& opts);

/// Copies local `from` to `to` in the guest with `rsync_argv`, or guest
/// `from` to local `to` with `sync_direction::from_guest`. Throws
/// `localvm::error`: `errc::not_found` naming the path when the source
/// does not exist (rsync exits 23, its sender saying `link_stat` or
/// `change_dir ... No such file or directory`); `errc::ssh_unreachable` when its ssh could not
/// connect or authenticate (rsync exits 255, or 12 with ssh's own error message on stderr when it
/// notices the broken stream first), `errc::process_failed` for any other failure, naming rsync's
/// exit code with its last stderr lines (a refused host key says so, as for `shell`);
/// `errc::timeout`; `errc::invalid_argument` as `shell`; `errc::not_found`
/// when rsync is not installed. Cancellation
/// terminates rsync (and with it ssh) and completes with `operation_aborted`.
boost::asio::awaitable<void> sync(target t, std::string from, std::string to,
                                  sync_options opts = sync_options());

} // namespace localvm::ssh
