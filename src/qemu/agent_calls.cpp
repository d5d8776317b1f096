#include "agent_calls.hpp"

#include <localvm/atomic_file.hpp>
#include <localvm/error.hpp>
#include <localvm/qmp/client.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <random>

#include "detail/await.hpp"
#include "detail/backoff.hpp"
#include "detail/race.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include <fcntl.h>
#include <sys/stat.h>

namespace localvm::qemu::detail {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr auto never = clock_type::time_point::max();

// What one agent request may take before `deadline`; without one, the
// client's own call timeout (30 s).
milliseconds left(clock_type::time_point deadline) {
    if (deadline == never)
        return qga::use_call_timeout;
    return localvm::detail::time_left(deadline);
}

// Runs `op` to its end even when the calling coroutine was cancelled (the
// clean-up after a cancellation must still reach the guest), within
// agent_cleanup_timeout, as a coroutine of its own that no cancellation
// reaches. Returns its failure as text ("" when it worked): clean-up never
// hides the error that made it necessary. A cancelled caller resets its
// cancellation state first (asio throws at any await of a cancelled
// coroutine); it rethrows the failure it caught, cancellation included.
asio::awaitable<std::string> uncancelled(asio::awaitable<void> op, std::string what) {
    std::string failure;
    try {
        auto ex = co_await asio::this_coro::executor;
        co_await asio::co_spawn(
            ex, localvm::detail::with_deadline(std::move(op), agent_cleanup_timeout, std::move(what)),
            asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable));
    } catch (const std::exception& e) {
        failure = e.what();
    }
    co_return failure;
}

exec_result to_result(qga::exec_status&& s, std::int64_t pid) {
    exec_result r;
    r.exit_status = s.exit_code.value_or(-1);
    r.signal = s.signal;
    r.out = std::move(s.out);
    r.err = std::move(s.err);
    r.out_truncated = s.out_truncated;
    r.err_truncated = s.err_truncated;
    r.pid = pid;
    return r;
}

// Polls guest-exec-status of `pid` until it exited (a killed program).
asio::awaitable<void> reap(qga::client& agent, std::int64_t pid) {
    localvm::detail::backoff pause(milliseconds(1), milliseconds(100));
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (;;) {
        auto s = co_await agent.exec_status(pid);
        if (s.exited)
            co_return;
        t.expires_after(pause.next());
        co_await t.async_wait(asio::use_awaitable);
    }
}

// The agent has no kill command: `kill -9` run by guest-exec (sh's builtin,
// so no procps needed), then the status collected so the agent forgets it.
// Only the program itself is killed, not processes it started.
asio::awaitable<void> kill_program(qga::client& agent, std::int64_t pid) {
    qga::exec_request k;
    k.argv = {"sh", "-c", "kill -9 \"$1\"", "sh", std::to_string(pid)};
    auto s = co_await agent.exec(std::move(k), agent_cleanup_timeout);
    if (s.exit_code.value_or(-1) != 0)
        throw_error(errc::process_failed, "kill -9 " + std::to_string(pid) + " in the guest: " +
                                              (s.err.empty() ? std::string("failed") : s.err));
    co_await reap(agent, pid);
}

// guest-exec of a helper (stat, chmod, mv, rm) whose failure is an error.
asio::awaitable<qga::exec_status> run_helper(qga::client& agent, std::vector<std::string> argv,
                                             clock_type::time_point deadline) {
    qga::exec_request r;
    r.argv = std::move(argv);
    co_return co_await agent.exec(std::move(r), left(deadline));
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
        s.pop_back();
    return s;
}

bool says_missing(const std::string& text) {
    return text.find("No such file or directory") != std::string::npos;
}

// guest-file-open, with a missing file (or directory) as errc::not_found.
asio::awaitable<std::int64_t> open_guest(qga::client& agent, std::string path, std::string mode,
                                         clock_type::time_point deadline, std::string missing) {
    try {
        co_return co_await agent.file_open(path, mode, left(deadline));
    } catch (const qmp::command_error& e) {
        if (says_missing(e.desc()))
            throw localvm::error(errc::not_found, missing + " (guest-file-open: " + e.desc() + ")");
        throw;
    }
}

void check_chunk(std::size_t chunk) {
    if (chunk < 4096 || chunk > (std::size_t(32) << 20))
        throw_error(errc::invalid_argument, "copy: chunk_size " + std::to_string(chunk) +
                                                " is outside 4 KiB .. 32 MiB");
}

void check_guest_path(const std::string& p, const char* call) {
    if (p.empty() || p.front() != '/' || p.back() == '/')
        throw_error(errc::invalid_argument, std::string(call) + ": guest path \"" + p +
                                                "\" is not an absolute path naming a file");
}

std::string random_suffix() {
    std::random_device rd;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    return buf;
}

// Puts a deadline on the whole of `op` when `timeout` is set.
asio::awaitable<void> within(asio::awaitable<void> op, milliseconds timeout, std::string what) {
    if (timeout.count() <= 0)
        co_await std::move(op);
    else
        co_await localvm::detail::with_deadline(std::move(op), timeout, std::move(what));
}

// Clean-up of a failed copy in: the open handle closed, the temporary file gone.
asio::awaitable<void> drop_guest_temp(qga::client& agent, std::optional<std::int64_t> handle,
                                      std::string tmp) {
    if (handle) {
        try {
            co_await agent.file_close(*handle);
        } catch (const localvm::error&) {
            // the rm below is what matters
        }
    }
    std::vector<std::string> argv = {"rm", "-f", "--", tmp};
    co_await run_helper(agent, std::move(argv), clock_type::now() + agent_cleanup_timeout);
}

asio::awaitable<void> copy_in_body(qga::client& agent, sys::unique_fd fd, std::string from,
                                   std::string to, unsigned mode, std::size_t chunk) {
    const std::string tmp = to + ".localvm-" + random_suffix();
    std::optional<std::int64_t> handle;
    std::exception_ptr failure;
    try {
        handle = co_await open_guest(agent, tmp, "w", never,
                                     "copy_in: the guest directory of " + to + " does not exist");
        std::string buf(chunk, '\0');
        for (;;) {
            const auto n = sys::read_full(fd.get(), buf.data(), chunk);
            if (n < chunk && errno != 0)
                sys::throw_errno(errc::io_error, "copy_in: cannot read " + from, errno);
            if (n == 0)
                break;
            std::string piece(buf.data(), n);
            const auto wrote = co_await agent.file_write(*handle, std::move(piece));
            if (wrote != n)
                throw_error(errc::io_error, "copy_in: the guest wrote " + std::to_string(wrote) +
                                                " of " + std::to_string(n) + " bytes to " + tmp +
                                                " (a full guest disk?)");
            if (n < chunk)
                break;
        }
        const auto h = *handle;
        handle.reset();
        co_await agent.file_close(h);
        char octal[16];
        std::snprintf(octal, sizeof octal, "%04o", mode);
        std::vector<std::string> argv = {"sh", "-c", "chmod \"$1\" \"$2\" && mv -f -T -- \"$2\" \"$3\"",
                                         "sh", octal, tmp, to};
        auto s = co_await run_helper(agent, std::move(argv), never);
        if (s.exit_code.value_or(-1) != 0)
            throw_error(errc::io_error,
                        "copy_in: cannot put " + to + " in place in the guest: " + trimmed(s.err));
        co_return;
    } catch (...) {
        failure = std::current_exception();
    }
    co_await asio::this_coro::reset_cancellation_state();
    co_await uncancelled(drop_guest_temp(agent, handle, tmp), "removing " + tmp + " in the guest");
    std::rethrow_exception(failure);
}

asio::awaitable<void> close_guest(qga::client& agent, std::int64_t handle) {
    co_await agent.file_close(handle);
}

asio::awaitable<void> copy_out_body(qga::client& agent, std::string from, fs::path to,
                                    std::size_t chunk) {
    // The mode (and whether it is there at all) first: the file API has none.
    std::vector<std::string> argv = {"stat", "-L", "-c", "%a %F", "--", from};
    auto st = co_await run_helper(agent, std::move(argv), never);
    if (st.exit_code.value_or(-1) != 0) {
        if (says_missing(st.err))
            throw_error(errc::not_found, "copy_out: guest file " + from + " does not exist");
        throw_error(errc::io_error,
                    "copy_out: cannot stat guest file " + from + ": " + trimmed(st.err));
    }
    const auto line = trimmed(st.out);
    const auto space = line.find(' ');
    const auto type = space == std::string::npos ? std::string() : line.substr(space + 1);
    if (type != "regular file" && type != "regular empty file")
        throw_error(errc::invalid_argument, "copy_out: guest path " + from + " is a " +
                                                (type.empty() ? std::string("?") : type) +
                                                ", not a regular file");
    const auto mode = static_cast<unsigned>(std::stoul(line.substr(0, space), nullptr, 8));

    atomic_file out(to); // removed unless committed
    auto handle = co_await open_guest(agent, from, "r", never,
                                      "copy_out: guest file " + from + " does not exist");
    std::exception_ptr failure;
    try {
        for (;;) {
            auto piece = co_await agent.file_read(handle, chunk);
            out.write(piece.data);
            if (piece.eof || piece.data.empty())
                break;
        }
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        co_await asio::this_coro::reset_cancellation_state();
        co_await uncancelled(close_guest(agent, handle), "closing " + from + " in the guest");
        std::rethrow_exception(failure);
    }
    co_await agent.file_close(handle);
    out.commit(fs::perms(mode & 07777));
}

} // namespace

asio::awaitable<exec_result> agent_exec(qga::client& agent, std::vector<std::string> argv,
                                        exec_options opts) {
    if (argv.empty())
        throw_error(errc::invalid_argument, "exec: argv is empty");
    const auto deadline = localvm::detail::deadline_after(opts.timeout);
    const std::string program = argv.front();
    qga::exec_request r;
    r.argv = std::move(argv);
    r.env = std::move(opts.env);
    r.input = std::move(opts.input);
    const auto pid = co_await agent.exec_start(std::move(r), left(deadline));

    std::exception_ptr failure;
    try {
        localvm::detail::backoff pause(milliseconds(1), milliseconds(100));
        asio::steady_timer t(co_await asio::this_coro::executor);
        for (;;) {
            t.expires_at(std::min(clock_type::now() + pause.next(), deadline));
            co_await t.async_wait(asio::use_awaitable);
            if (clock_type::now() >= deadline)
                break;
            auto s = co_await agent.exec_status(pid, left(deadline));
            if (s.exited)
                co_return to_result(std::move(s), pid);
        }
    } catch (const localvm::error& e) {
        // A status request cut short by our own deadline is the timeout.
        if (e.code() != errc::timeout || deadline == never)
            failure = std::current_exception();
    } catch (...) {
        failure = std::current_exception();
    }
    co_await asio::this_coro::reset_cancellation_state();
    const auto killed = co_await uncancelled(kill_program(agent, pid),
                                             "kill -9 of guest pid " + std::to_string(pid));
    if (failure)
        std::rethrow_exception(failure);
    throw_error(errc::timeout,
                localvm::detail::timeout_message(opts.timeout, program + " (guest pid " +
                                                                   std::to_string(pid) +
                                                                   ") to exit") +
                    (killed.empty() ? "; killed it (kill -9 through guest-exec)"
                                    : "; could not kill it: " + killed));
}

asio::awaitable<void> agent_copy_in(qga::client& agent, fs::path from, std::string to,
                                    copy_options opts) {
    check_chunk(opts.chunk_size);
    check_guest_path(to, "copy_in");
    sys::unique_fd fd(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT)
            throw_error(errc::not_found, "copy_in: host file " + from.string() + " does not exist");
        sys::throw_errno(errc::io_error, "copy_in: cannot open " + from.string(), errno);
    }
    struct ::stat st{};
    if (::fstat(fd.get(), &st) != 0)
        sys::throw_errno(errc::io_error, "copy_in: cannot stat " + from.string(), errno);
    if (!S_ISREG(st.st_mode))
        throw_error(errc::invalid_argument,
                    "copy_in: host path " + from.string() + " is not a regular file");
    const unsigned mode = st.st_mode & 07777;
    auto what = "copy_in of " + from.string() + " to guest " + to;
    co_await within(copy_in_body(agent, std::move(fd), from.string(), std::move(to), mode,
                                 opts.chunk_size),
                    opts.timeout, std::move(what));
}

asio::awaitable<void> agent_copy_out(qga::client& agent, std::string from, fs::path to,
                                     copy_options opts) {
    check_chunk(opts.chunk_size);
    check_guest_path(from, "copy_out");
    auto what = "copy_out of guest " + from + " to " + to.string();
    co_await within(copy_out_body(agent, std::move(from), std::move(to), opts.chunk_size),
                    opts.timeout, std::move(what));
}

asio::awaitable<void> agent_wait_ready(std::string path, milliseconds timeout) {
    const auto deadline = clock_type::now() + timeout;
    qga::client_options co;
    co.connect_timeout = timeout;
    auto agent = co_await qga::client::connect(path, co);
    // Short attempts: an agent that starts late gets the next resync (its
    // channel may hold our earlier, unanswered ones: their tokens differ).
    localvm::detail::backoff attempt(milliseconds(250), milliseconds(2000));
    for (;;) {
        const auto rest = deadline - clock_type::now();
        if (rest < milliseconds(1))
            throw_error(errc::timeout,
                        localvm::detail::timeout_message(timeout, "the guest agent on " + path +
                                                                      " to answer guest-ping") +
                            " (is qemu-guest-agent installed and running in the guest?)");
        try {
            co_await agent.ping(std::max(std::chrono::ceil<milliseconds>(attempt.next(rest)), milliseconds(1)));
            co_return;
        } catch (const localvm::error& e) {
            if (e.code() != errc::timeout)
                throw;
        }
    }
}

asio::awaitable<void> agent_shutdown(std::string path, milliseconds timeout) {
    const auto deadline = clock_type::now() + timeout;
    qga::client_options co;
    co.connect_timeout = timeout;
    auto agent = co_await qga::client::connect(path, co);
    co_await agent.shutdown(qga::shutdown_mode::powerdown, left(deadline));
}

} // namespace localvm::qemu::detail
