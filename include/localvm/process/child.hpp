// Child processes on the caller's executor: spawn, stream, capture, kill.
#pragma once

#include <localvm/output.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace localvm::process {

/// What happens to one output stream (stdout or stderr) of a child.
enum class stream_mode {
    inherit, ///< The child writes to the parent's stream.
    null,    ///< Discarded (/dev/null).
    sink,    ///< Each line goes to `output_stream::sink`, in order; a partial last line is flushed at EOF.
             ///< A line longer than `capture_limit` is delivered in pieces of that size.
    capture, ///< Collected into `result::out`/`err`, at most `capture_limit` bytes.
};

/// How one output stream is handled.
struct output_stream {
    stream_mode mode = stream_mode::capture;  ///< Default: captured.
    line_sink sink;                           ///< Used when `mode == stream_mode::sink`.
    std::size_t capture_limit = 16u << 20;    ///< Bytes kept in capture mode (the first ones); the rest are counted as dropped.
    /// With `stream_mode::inherit`: the fd the child writes to (e.g. a
    /// terminal); -1 (the default) is the parent's own stdout or stderr
    /// (/dev/null if that is closed). Not closed; an fd that is not open is
    /// `errc::invalid_argument`.
    int inherit_fd = -1;
};

/// What feeds the child's stdin.
enum class input_mode {
    null,    ///< /dev/null (the default).
    inherit, ///< The parent's stdin (interactive programs).
    data,    ///< `options::input` is written, then stdin is closed.
};

/// Everything needed to run one program.
struct options {
    /// Defaults. (User-declared, so this is not an aggregate: GCC 12
    /// miscompiles a braced aggregate argument to a coroutine.)
    options() = default;
    /// Program and arguments; never passed through a shell. `argv[0]` without
    /// a `/` is looked up in PATH. Empty is `errc::invalid_argument`.
    std::vector<std::string> argv;
    /// The complete environment as "NAME=value"; nullopt inherits the parent's.
    std::optional<std::vector<std::string>> environment;
    /// "NAME=value" entries set on top of the (inherited or given) environment;
    /// a bare "NAME" removes NAME. PATH lookup of `argv[0]` uses the result.
    std::vector<std::string> env_overrides;
    /// Working directory; empty inherits the parent's.
    std::filesystem::path working_directory;
    input_mode stdin_mode = input_mode::null; ///< Default /dev/null.
    /// With `input_mode::inherit`: the fd the child reads (e.g. a terminal);
    /// -1 (the default) is the parent's own stdin (/dev/null if that is
    /// closed). Not closed; an fd that is not open is `errc::invalid_argument`.
    int stdin_fd = -1;
    std::string input;                        ///< Written to stdin when `stdin_mode == input_mode::data`.
    output_stream out;                        ///< stdout handling (default: capture).
    output_stream err;                        ///< stderr handling (default: capture).
    /// Overall deadline; zero means none. When it passes the child is
    /// terminated (SIGTERM, then SIGKILL after `kill_grace`) and
    /// `result::timed_out` is set.
    std::chrono::milliseconds timeout{0};
    /// Time between SIGTERM and SIGKILL when the child must be ended. Default 2 s.
    std::chrono::milliseconds kill_grace{2000};
    /// Start the child in a new session (setsid), away from our terminal's
    /// signals. The SIGTERM/SIGKILL of a timeout, cancellation or `terminate`
    /// then go to its whole process group (its own children too).
    bool new_session = false;
};

/// How a child ended and what it wrote.
struct result {
    int exit_code = -1;        ///< Exit status; meaningful when `signal == 0`.
    int signal = 0;            ///< Terminating signal, or 0 when it exited.
    bool timed_out = false;    ///< `options::timeout` passed and the child was ended.
    std::string out;           ///< Captured stdout (capture mode only).
    std::string err;           ///< Captured stderr (capture mode only).
    std::size_t out_dropped = 0; ///< stdout bytes beyond `capture_limit`.
    std::size_t err_dropped = 0; ///< stderr bytes beyond `capture_limit`.
    /// The last lines of stderr (up to 20) in sink and capture modes, for diagnostics.
    std::vector<std::string> err_tail;

    /// True when the child exited with status 0, unsignalled and in time.
    bool success() const noexcept { return !timed_out && signal == 0 && exit_code == 0; }
    /// "exited with status 3", "killed by signal 9 (SIGKILL)", "timed out".
    std::string describe() const;
};

/// A running child process bound to an executor. Movable, not copyable.
/// Destroying a child that still runs kills it (SIGKILL) and reaps it
/// (blocking briefly). Its exit is awaited on a pidfd: no SIGCHLD handler is
/// installed, and other children of the process are never reaped by it.
/// Only fds 0, 1 and 2 are open in the child; signal dispositions and mask
/// are reset to the defaults. The child starts by vfork: it borrows this
/// process's memory until its exec, and the calling thread waits for that
/// moment, so a start costs the same whatever this process's size (a fork
/// would copy its page tables).
class child {
public:
    /// Spawns `opts.argv` now. Throws `localvm::error`: `errc::invalid_argument`
    /// for an empty argv, `errc::not_found` naming a program that does not
    /// exist, `errc::process_failed` for one that cannot be executed (with
    /// errno's text).
    child(boost::asio::any_io_executor executor, options opts);
    child(child&&) noexcept;
    child& operator=(child&&) noexcept;
    ~child();

    /// The child's process id.
    pid_t pid() const noexcept;

    /// Waits until the child has exited and its output is drained (EOF on the
    /// pipes); applies `options::timeout` (counted from the spawn).
    /// Cancellation (terminal, e.g. losing an `||` race or a cancellation
    /// slot) terminates the child (SIGTERM, then SIGKILL after `kill_grace`,
    /// a sequence that further cancellation does not shorten), reaps it, then
    /// completes with `boost::asio::error::operation_aborted`. An exception
    /// from a sink likewise ends the child and is rethrown. Never leaves a
    /// zombie. Once it has completed, later calls return the same result; a
    /// second call while one is in progress throws `errc::invalid_argument`.
    boost::asio::awaitable<result> wait();

    /// Sends `signo` to the child if it still runs (not yet reaped).
    void signal(int signo) noexcept;

    /// Ends the child: SIGTERM, then SIGKILL after `grace`; returns its result
    /// (output read so far and what was left in the pipes). Cancellation sends
    /// SIGKILL at once, reaps, and completes with operation_aborted.
    boost::asio::awaitable<result> terminate(std::chrono::milliseconds grace);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// Spawns `opts` and waits for it: `child(executor, opts).wait()` on the
/// current coroutine's executor. Throws as `child` does; a failing exit
/// status is not an error here (see `result::success`).
boost::asio::awaitable<result> run(options opts);

/// As `run`, but an unsuccessful result throws `localvm::error` with
/// `errc::process_failed` (or `errc::timeout`), whose diagnostic names the
/// command, how it ended and the tail of its stderr.
boost::asio::awaitable<result> run_checked(options opts);

/// Renders an argv for messages: words joined by spaces; a word with
/// characters other than letters, digits and `_@%+=:,./-` (or an empty one)
/// is single-quoted the POSIX shell way (`'it'\''s'`).
std::string format_command(const std::vector<std::string>& argv);

} // namespace localvm::process
