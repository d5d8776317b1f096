// shell, wait_for_login and sync: the argv builders run through the process
// layer, with ssh's and rsync's exit codes mapped to localvm errors.
#include <localvm/atomic_file.hpp>
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/ssh/command.hpp>
#include <localvm/ssh/master.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "argv.hpp"
#include "detail/backoff.hpp"
#include "race.hpp"

namespace localvm::ssh {

namespace asio = boost::asio;

namespace {

// ssh (and rsync, which passes its ssh's status on) exits 255 when it could
// not connect or authenticate.
constexpr int ssh_failure_status = 255;

std::string who(const target& t) {
    return (t.user.empty() ? t.host : t.user + "@" + t.host) + ":" + std::to_string(t.port);
}

void check(const target& t) {
    if (auto problem = detail::target_problem(t); !problem.empty())
        throw_error(errc::invalid_argument, std::move(problem));
}

// Pinned keys: known_hosts holds exactly them before every run of ssh, so a
// stale or edited file cannot widen what ssh accepts.
void check_and_pin(const target& t) {
    check(t);
    if (!t.known_host_keys.empty())
        reset_known_hosts(t);
}

std::string tail_text(const process::result& r) {
    std::string out;
    for (const auto& line : r.err_tail) {
        if (!out.empty())
            out += "\n";
        out += line;
    }
    return out.empty() ? "(no stderr)" : out;
}

std::string ms_text(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + " ms";
}

// rsync's "partial transfer" (23) because the source is not there:
// `rsync: [sender] link_stat "/x" failed: No such file or directory (2)`,
// or `change_dir "/x"` when its folder is missing too.
bool source_missing(const process::result& r) {
    if (r.signal != 0 || r.timed_out || r.exit_code != 23)
        return false;
    for (const auto& line : r.err_tail)
        if (line.find("[sender]") != std::string::npos &&
            (line.find("link_stat \"") != std::string::npos ||
             line.find("change_dir \"") != std::string::npos) &&
            line.find("No such file or directory") != std::string::npos)
            return true;
    return false;
}

// rsync passes its ssh's exit status 255 on, except when it notices the
// broken protocol stream first: then it exits 12 (seen with a refused
// connection). ssh's own messages on stderr tell that case apart from a
// remote rsync that died.
bool ssh_failed_under_rsync(const process::result& r) {
    if (r.signal != 0 || r.timed_out)
        return false;
    if (r.exit_code == ssh_failure_status)
        return true;
    if (r.exit_code != 12)
        return false;
    static constexpr std::string_view markers[] = {
        "Permission denied (", // authentication
        "Host key verification failed",
        "kex_exchange_identification:",
        "Connection closed by ",
        "Connection reset by ",
        "Connection timed out during banner exchange",
    };
    for (const auto& line : r.err_tail) {
        if (line.starts_with("ssh: "))
            return true;
        for (auto m : markers)
            if (line.find(m) !=
                std::string::npos) // e.g. "user@host: Permission denied (publickey)."
                return true;
    }
    return false;
}

} // namespace

void reset_known_hosts(const target& t) {
    if (t.known_hosts_file.empty())
        throw_error(errc::invalid_argument, "ssh target " + who(t) + ": known_hosts_file not set");
    write_file_atomic(t.known_hosts_file, known_hosts_content(t), std::filesystem::perms(0600));
}

asio::awaitable<shell_result> shell(target t, std::string command, shell_options opts) {
    check_and_pin(t);
    const bool interactive = command.empty();
    process::options po;
    po.argv = ssh_argv(t, command, interactive);
    po.timeout = opts.timeout;
    // A client of a master waits up to about 2 s after SIGTERM before it
    // exits (it retries its read of the master's socket), and has nothing
    // to clean up: the master ends the session when the client's socket
    // closes. So it gets SIGKILL sooner.
    if (multiplexed(t))
        po.kill_grace = std::chrono::milliseconds(300);

    shell_result res;
    // Unset sinks capture into one buffer, line by line in arrival order.
    auto capture = [&res, limit = opts.capture_limit](std::string_view line) {
        if (res.output.size() + line.size() + 1 > limit) {
            res.truncated = true;
            return;
        }
        res.output.append(line);
        res.output.push_back('\n');
    };
    if (interactive) {
        po.stdin_mode = process::input_mode::inherit;
        po.stdin_fd = opts.input_fd;
        po.out.mode = process::stream_mode::inherit;
        po.out.inherit_fd = opts.output_fd;
        po.err.mode = process::stream_mode::inherit;
        po.err.inherit_fd = opts.error_fd;
    } else {
        po.stdin_mode = process::input_mode::null;
        po.out.mode = process::stream_mode::sink;
        po.out.sink = opts.out ? opts.out : line_sink(capture);
        po.err.mode = process::stream_mode::sink;
        po.err.sink = opts.err ? opts.err : line_sink(capture);
    }

    const std::string what =
        interactive ? "ssh " + who(t) : "ssh " + who(t) + " -- " + shell_quote(command);
    auto r = co_await process::run(std::move(po));
    if (r.timed_out)
        throw_error(errc::timeout, what + " did not finish within " + ms_text(opts.timeout));
    if (r.signal != 0)
        throw_error(errc::process_failed, what + ": " + r.describe());
    if (r.exit_code == ssh_failure_status && detail::host_key_rejected(r.err_tail))
        throw_error(errc::ssh_unreachable,
                    what + " failed: " + detail::host_key_rejected_text(t, r.err_tail));
    if (r.exit_code == ssh_failure_status)
        throw_error(errc::ssh_unreachable, what + " failed (ssh exit status 255): " + tail_text(r));
    res.exit_status = r.exit_code;
    co_return res;
}

namespace {

asio::awaitable<int> login_loop(target t, login_options opts) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + opts.timeout;
    localvm::detail::backoff pause(opts.retry_interval, opts.max_retry_interval);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    int attempts = 0;
    std::string last;
    for (;;) {
        auto remaining =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (remaining.count() <= 0)
            break;
        ++attempts;
        process::options po;
        po.argv = ssh_argv(t, "true");
        po.timeout = remaining;
        po.out.mode = process::stream_mode::null;
        po.err.mode = process::stream_mode::capture;
        po.err.capture_limit = 64u << 10;
        auto r = co_await process::run(std::move(po));
        if (r.success())
            co_return attempts;
        // A guest that presents another key will not present ours later.
        if (!r.timed_out && detail::host_key_rejected(r.err_tail))
            throw_error(errc::ssh_unreachable, "ssh login to " + who(t) + ": " +
                                                   detail::host_key_rejected_text(t, r.err_tail));
        if (!r.timed_out)
            last = r.describe() + ": " + tail_text(r);
        else if (last.empty())
            last = "ssh did not finish before the deadline";
        // else: keep the previous attempt's reason; this one was cut off.
        if (clock::now() >= deadline)
            break;
        timer.expires_after(pause.next(deadline - clock::now()));
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec)
            throw boost::system::system_error(asio::error::operation_aborted);
    }
    throw_error(errc::ssh_unreachable, "no ssh login to " + who(t) + " within " +
                                           ms_text(opts.timeout) + " (" + std::to_string(attempts) +
                                           " attempts); last: " + last);
}

} // namespace

asio::awaitable<void> wait_for_login(target t, login_options opts, abort_hook abort) {
    check_and_pin(t);
    const std::chrono::milliseconds zero{0};
    if (opts.timeout <= zero || opts.retry_interval <= zero || opts.max_retry_interval <= zero)
        throw_error(errc::invalid_argument,
                    "wait_for_login: every login_options duration must be positive");
    if (!abort) {
        co_await login_loop(std::move(t), opts);
        co_return;
    }
    const std::string name = who(t);
    auto outcome = co_await detail::race_abort(login_loop(std::move(t), opts), abort());
    if (outcome.index() == 1)
        throw_error(errc::guest_died, "guest died while waiting for an ssh login to " + name +
                                          ": " + std::get<1>(outcome));
}

asio::awaitable<void> sync(target t, std::string from, std::string to, sync_options opts) {
    check_and_pin(t);
    const bool from_guest = opts.direction == sync_direction::from_guest;
    if (from.empty() || to.empty())
        throw_error(errc::invalid_argument, std::string(from_guest ? "sync from " : "sync to ") +
                                                who(t) + ": empty source or destination");
    process::options po;
    po.argv = rsync_argv(t, from, to, opts);
    po.timeout = opts.timeout;
    po.stdin_mode = process::input_mode::null;
    // Sink mode for both keeps stderr's tail for diagnostics even when the
    // caller wants no output.
    line_sink sink = opts.output ? opts.output : line_sink([](std::string_view) {});
    po.out.mode = process::stream_mode::sink;
    po.out.sink = sink;
    po.err.mode = process::stream_mode::sink;
    po.err.sink = sink;

    const std::string what = from_guest ? "rsync " + from + " from " + who(t) + " to " + to
                                        : "rsync " + from + " to " + who(t) + ":" + to;
    auto r = co_await process::run(std::move(po));
    if (r.success())
        co_return;
    if (r.timed_out)
        throw_error(errc::timeout, what + " did not finish within " + ms_text(opts.timeout));
    if (ssh_failed_under_rsync(r) && detail::host_key_rejected(r.err_tail))
        throw_error(errc::ssh_unreachable,
                    what + ": " + detail::host_key_rejected_text(t, r.err_tail));
    if (ssh_failed_under_rsync(r))
        throw_error(errc::ssh_unreachable, what + ": ssh failed (rsync exit status " +
                                               std::to_string(r.exit_code) + "): " + tail_text(r));
    if (source_missing(r))
        throw_error(errc::not_found, what + ": " + (from_guest ? "the guest path " : "the path ") +
                                         from + " does not exist: " + tail_text(r));
    throw_error(errc::process_failed, what + ": rsync " + r.describe() + ": " + tail_text(r));
}

} // namespace localvm::ssh
