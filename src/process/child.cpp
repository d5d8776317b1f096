// Children are Boost.Process v2 processes started by our own bp2 launcher
// (launcher.hpp, which says why not Boost 1.81's), with bp2's stdio and
// start-dir initializers; exec_plan (exec.cpp) resolves the program in PATH
// and builds the environment. Exit is awaited on a copy of the child's
// pidfd (never a SIGCHLD signal_set, which would reap or race other
// children).
#include "launcher.hpp"

#include "detail/race.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"

#include <localvm/error.hpp>
#include <localvm/process/child.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <deque>
#include <span>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace localvm::process {

namespace asio = boost::asio;
namespace bp2 = boost::process::v2;

namespace {

constexpr std::size_t tail_lines = 20;
constexpr std::size_t tail_line_max = 4096;
constexpr std::size_t read_chunk = 64 * 1024;

// With errno as the failed call left it (callers build `what` from strings
// only, which leaves errno alone).
[[noreturn]] void throw_errno(errc code, const std::string& what) {
    sys::throw_errno(code, what, errno);
}

// Owns a raw fd until it is handed to an asio descriptor or the child.
using sys::unique_fd;

// A close-on-exec copy of a caller's fd, above 2, for the child to
// install as one of its stdio fds; the caller's fd stays as it is.
int duplicate(int fd, const char* stream, const std::string& command) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0)
        throw_errno(errc::invalid_argument, "fd " + std::to_string(fd) + " given as " + stream +
                                                " of " + command);
    return copy;
}

void make_pipe(unique_fd& r, unique_fd& w, const std::string& command) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        throw_errno(errc::process_failed, "cannot create a pipe for " + command);
    r.reset(p[0]);
    w.reset(p[1]);
}

// One stdout or stderr stream as we read it.
struct stream_state {
    stream_mode mode = stream_mode::capture;
    line_sink sink;
    std::size_t limit = 0;
    bool keep_tail = false;
    std::optional<asio::posix::stream_descriptor> pipe;
    std::string line; // the partial line not yet delivered
    std::string captured;
    std::size_t dropped = 0;
    std::deque<std::string> tail;
    std::vector<char> buf;
    bool finished = false;

    bool line_mode() const { return mode == stream_mode::sink || keep_tail; }

    void emit(std::string_view l) {
        if (mode == stream_mode::sink && sink)
            sink(l);
        if (keep_tail) {
            tail.emplace_back(l.substr(0, tail_line_max));
            if (tail.size() > tail_lines)
                tail.pop_front();
        }
    }

    // A line longer than this is delivered in pieces (sink) or cut (tail).
    std::size_t line_max() const {
        return mode == stream_mode::sink ? std::max<std::size_t>(limit, 1) : tail_line_max;
    }

    void consume(const char* p, std::size_t n) {
        if (mode == stream_mode::capture) {
            std::size_t room = limit > captured.size() ? limit - captured.size() : 0;
            std::size_t keep = std::min(room, n);
            captured.append(p, keep);
            dropped += n - keep;
        }
        if (!line_mode())
            return;
        const char* end = p + n;
        while (p < end) {
            auto* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
            const char* seg_end = nl ? nl : end;
            std::size_t seg = static_cast<std::size_t>(seg_end - p);
            if (mode == stream_mode::sink) {
                while (line.size() + seg > line_max()) {
                    std::size_t take = line_max() - line.size();
                    line.append(p, take);
                    emit(line);
                    line.clear();
                    p += take;
                    seg -= take;
                }
                line.append(p, seg);
            } else if (line.size() < line_max()) {
                line.append(p, std::min(seg, line_max() - line.size()));
            }
            p = seg_end;
            if (nl) {
                emit(line);
                line.clear();
                ++p;
            }
        }
    }

    void finish() {
        if (finished)
            return;
        finished = true;
        if (line_mode() && !line.empty())
            emit(line);
        line.clear();
        if (pipe)
            pipe.reset();
    }
};

// Writes to a pipe whose reader may be gone without raising SIGPIPE in this
// process: a library must not change the process's signal dispositions, so
// SIGPIPE is blocked in this thread for the write and a signal it raised is
// consumed before unblocking.
ssize_t write_no_sigpipe(int fd, const char* p, std::size_t n) {
    sigset_t pipe_set, old_set, pending;
    ::sigemptyset(&pipe_set);
    ::sigaddset(&pipe_set, SIGPIPE);
    ::sigpending(&pending);
    const bool was_pending = ::sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    ssize_t w = ::write(fd, p, n);
    int saved = errno;
    if (w < 0 && saved == EPIPE && !was_pending) {
        timespec zero{0, 0};
        while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
        }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
    errno = saved;
    return w;
}

// The error for a launch that failed at `launch.failure`, in the words of
// exec_plan's messages.
[[noreturn]] void throw_launch_failure(const detail::exec_plan& plan, const detail::launcher& launch,
                                       const boost::system::error_code& ec) {
    using step = detail::launcher::step;
    auto report = [&](detail::exec_stage stage) -> detail::exec_report {
        return {'E', static_cast<int>(stage), ec.value()};
    };
    switch (launch.failure) {
    case step::exec:
        detail::throw_exec_failure(plan, report(detail::exec_stage::exec));
    case step::exec_setup:
        detail::throw_exec_failure(plan, report(launch.initializer == 0 ? detail::exec_stage::stdio
                                                                        : detail::exec_stage::chdir));
    case step::fork:
        detail::throw_exec_failure(plan, report(detail::exec_stage::fork));
    case step::pidfd:
        throw_error(errc::unsupported, "pidfd_open for " + plan.command() +
                                           " (needs Linux >= 5.3): " + ec.message());
    default:
        throw_error(errc::process_failed, "cannot start " + plan.command() + ": " + ec.message());
    }
}

} // namespace

struct child::impl {
    asio::any_io_executor ex;
    options opts;
    std::string command;
    pid_t pid = -1;
    bool reaped = false;
    bool status_known = false;
    int status = 0;
    std::optional<asio::posix::stream_descriptor> pidfd;
    std::optional<asio::posix::stream_descriptor> in;
    std::size_t in_offset = 0;
    stream_state out, err;
    std::chrono::steady_clock::time_point started;
    bool waiting = false;
    bool done = false;
    result res;

    impl(asio::any_io_executor e, options o) : ex(std::move(e)), opts(std::move(o)) {}

    ~impl() { kill_and_reap(); }

    // Blocking, for destructors and error paths: SIGKILL is not ignorable,
    // so the wait is short.
    void kill_and_reap() noexcept {
        if (pid <= 0 || reaped)
            return;
        send(SIGKILL);
        int st = 0;
        while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        reaped = true;
    }

    void send(int signo) noexcept {
        if (pid <= 0 || reaped)
            return; // after reaping the pid may belong to someone else
        // A child in its own session leads its process group: end the group.
        if (opts.new_session && (signo == SIGTERM || signo == SIGKILL))
            ::kill(-pid, signo);
        ::kill(pid, signo);
    }

    // Records the exit status if the child has exited; never blocks.
    bool try_reap() {
        if (reaped)
            return true;
        int st = 0;
        pid_t r;
        while ((r = ::waitpid(pid, &st, WNOHANG)) < 0 && errno == EINTR) {
        }
        if (r == 0)
            return false;
        reaped = true;
        if (r == pid) {
            status = st;
            status_known = true;
        } // else ECHILD: someone else reaped it (e.g. a SIGCHLD handler); status unknown
        return true;
    }

    void start() {
        detail::exec_plan plan(opts.argv, opts.environment, opts.env_overrides,
                               opts.working_directory);
        command = plan.command();
        // Before we create fds: one of ours that is closed would be taken.
        const bool own_open[3] = {::fcntl(0, F_GETFD) >= 0, ::fcntl(1, F_GETFD) >= 0,
                                  ::fcntl(2, F_GETFD) >= 0};

        unique_fd child_fd[3], parent_in, parent_out, parent_err;
        switch (opts.stdin_mode) {
        case input_mode::null:
            child_fd[0].reset(detail::open_dev_null(O_RDONLY));
            break;
        case input_mode::inherit:
            if (opts.stdin_fd >= 0)
                child_fd[0].reset(duplicate(opts.stdin_fd, "stdin", command));
            break;
        case input_mode::data:
            make_pipe(child_fd[0], parent_in, command);
            if (::fcntl(parent_in.get(), F_SETFL, O_NONBLOCK) != 0)
                throw_errno(errc::process_failed, "fcntl on the stdin pipe for " + command);
            break;
        }
        auto setup_out = [&](const output_stream& s, unique_fd& cfd, unique_fd& pfd,
                             const char* name) {
            switch (s.mode) {
            case stream_mode::inherit:
                if (s.inherit_fd >= 0)
                    cfd.reset(duplicate(s.inherit_fd, name, command));
                break;
            case stream_mode::null:
                cfd.reset(detail::open_dev_null(O_WRONLY));
                break;
            case stream_mode::sink:
            case stream_mode::capture:
                make_pipe(pfd, cfd, command);
                break;
            }
        };
        setup_out(opts.out, child_fd[1], parent_out, "stdout");
        setup_out(opts.err, child_fd[2], parent_err, "stderr");

        // bp2's process_stdio dup2s in order: every fd it installs must sit
        // above 2, where no earlier dup2 can overwrite it.
        auto binding = [&](int target, unique_fd& f) {
            if (!f) {
                if (own_open[target])
                    return target; // our own, as it is
                // Ours is closed: the child gets /dev/null rather than a
                // closed stdio fd that its first open() would take.
                f.reset(detail::open_dev_null(target == 0 ? O_RDONLY : O_WRONLY));
            }
            if (f.get() < 3) {
                unique_fd above(::fcntl(f.get(), F_DUPFD_CLOEXEC, 3));
                if (!above)
                    throw_errno(errc::process_failed, "cannot set up the stdio of " + command);
                std::swap(f, above);
            }
            return f.get();
        };
        bp2::process_stdio stdio{binding(0, child_fd[0]), binding(1, child_fd[1]),
                                 binding(2, child_fd[2])};

        detail::launcher launch;
        launch.arg0 = opts.argv[0].c_str();
        launch.env = plan.envp();
        launch.new_session = opts.new_session;
        const auto args = std::span(opts.argv).subspan(1);
        boost::system::error_code ec;
        // Initializer 0 is stdio, 1 the working directory.
        auto proc = plan.cwd() ? launch(ex, ec, plan.path(), args, stdio,
                                        bp2::process_start_dir(plan.cwd()))
                               : launch(ex, ec, plan.path(), args, stdio);
        if (ec)
            throw_launch_failure(plan, launch, ec);
        pid = proc.id();
        // We wait on our own copy of the pidfd (see await_exit) and drop
        // bp2's handle now: its destructor would waitpid and SIGKILL a pid
        // that may since belong to another child.
        unique_fd own(::fcntl(launch.pidfd, F_DUPFD_CLOEXEC, 3));
        const int dup_errno = errno;
        (void)proc.detach();
        if (!own) {
            kill_and_reap();
            errno = dup_errno;
            throw_errno(errc::process_failed, "cannot duplicate the pidfd of " + command);
        }
        pidfd.emplace(ex, own.release());
        started = std::chrono::steady_clock::now();

        auto init_stream = [&](stream_state& s, const output_stream& o, unique_fd& pfd2, bool tail) {
            s.mode = o.mode;
            s.sink = o.sink;
            s.limit = o.capture_limit;
            s.keep_tail = tail && (o.mode == stream_mode::sink || o.mode == stream_mode::capture);
            if (pfd2) {
                s.pipe.emplace(ex, pfd2.release());
                s.buf.resize(read_chunk);
            } else {
                s.finished = true;
            }
        };
        init_stream(out, opts.out, parent_out, false);
        init_stream(err, opts.err, parent_err, true);
        if (parent_in) {
            in.emplace(ex, parent_in.release());
            if (opts.input.empty())
                in.reset(); // EOF at once
        }
    }

    asio::awaitable<void> pump(stream_state& s) {
        while (s.pipe) {
            auto [ec, n] = co_await s.pipe->async_read_some(asio::buffer(s.buf),
                                                            asio::as_tuple(asio::use_awaitable));
            if (n > 0)
                s.consume(s.buf.data(), n);
            if (ec == asio::error::eof)
                break;
            if (ec)
                throw boost::system::system_error(ec, "reading the output of " + command);
        }
        s.finish();
    }

    asio::awaitable<void> feed() {
        while (in) {
            if (in_offset >= opts.input.size()) {
                in.reset(); // closes stdin: the child sees EOF
                break;
            }
            co_await in->async_wait(asio::posix::descriptor_base::wait_write, asio::use_awaitable);
            ssize_t n = write_no_sigpipe(in->native_handle(), opts.input.data() + in_offset,
                                         opts.input.size() - in_offset);
            if (n >= 0) {
                in_offset += static_cast<std::size_t>(n);
            } else if (errno == EPIPE) {
                in.reset(); // the child closed stdin: it did not want the rest
            } else if (errno != EAGAIN && errno != EINTR) {
                throw_errno(errc::process_failed, "writing to the stdin of " + command);
            }
        }
    }

    // Not the bp2 handle's async_wait: in Boost 1.81 it calls a blocking
    // waitpid whenever the pidfd reports readiness, and a stale readiness
    // (seen after a pidfd's number and asio state were reused) then blocks
    // the io_context on a live child. Readiness here is only a hint.
    asio::awaitable<void> await_exit() {
        while (!try_reap())
            co_await pidfd->async_wait(asio::posix::descriptor_base::wait_read, asio::use_awaitable);
    }

    // Everything wait() waits for: exit, EOF on both pipes, stdin written.
    // A parallel group rather than `&&`, so that the first failure in time
    // (a throwing sink, say) is the one rethrown, not a multiple_exceptions.
    asio::awaitable<void> run_io() {
        auto [order, e0, e1, e2, e3] =
            co_await asio::experimental::make_parallel_group(
                asio::co_spawn(ex, pump(out), asio::deferred),
                asio::co_spawn(ex, pump(err), asio::deferred),
                asio::co_spawn(ex, feed(), asio::deferred),
                asio::co_spawn(ex, await_exit(), asio::deferred))
                .async_wait(asio::experimental::wait_for_one_error(), asio::use_awaitable);
        const std::exception_ptr failures[] = {e0, e1, e2, e3};
        for (auto i : order)
            if (failures[i])
                std::rethrow_exception(failures[i]);
    }

    // Reads what is left in a pipe without waiting for EOF (a grandchild may
    // still hold the write end after the child died).
    void drain(stream_state& s) {
        if (s.pipe) {
            boost::system::error_code ec;
            s.pipe->non_blocking(true, ec);
            while (!ec) {
                std::size_t n = s.pipe->read_some(asio::buffer(s.buf), ec);
                if (n > 0)
                    s.consume(s.buf.data(), n);
            }
        }
        s.finish();
    }

    // SIGTERM, output and exit awaited for `grace`, then SIGKILL. On any
    // failure (a throwing sink, cancellation) the child is killed and reaped
    // before the exception leaves.
    asio::awaitable<void> stop(std::chrono::milliseconds grace) {
        try {
            send(SIGTERM);
            // The first to end wins: output and exit, a failure (a throwing
            // sink), or the grace period.
            asio::steady_timer t(ex, grace);
            auto r = co_await localvm::detail::race(run_io(), t.async_wait(asio::use_awaitable));
            if (r.index() == 1) {
                send(SIGKILL);
                co_await await_exit();
            }
        } catch (...) {
            kill_and_reap();
            in.reset();
            drain(out);
            drain(err);
            throw;
        }
        in.reset();
        drain(out);
        drain(err);
    }

    result& finish(bool timed_out) {
        out.finish();
        err.finish();
        in.reset();
        pidfd.reset();
        done = true;
        res.timed_out = timed_out;
        if (status_known && WIFEXITED(status)) {
            res.exit_code = WEXITSTATUS(status);
        } else if (status_known && WIFSIGNALED(status)) {
            res.signal = WTERMSIG(status);
        }
        res.out = std::move(out.captured);
        res.err = std::move(err.captured);
        res.out_dropped = out.dropped;
        res.err_dropped = err.dropped;
        res.err_tail.assign(err.tail.begin(), err.tail.end());
        return res;
    }
};

child::child(asio::any_io_executor executor, options opts)
    : impl_(std::make_unique<impl>(std::move(executor), std::move(opts))) {
    impl_->start();
}

child::child(child&&) noexcept = default;
child& child::operator=(child&&) noexcept = default;
child::~child() = default;

pid_t child::pid() const noexcept { return impl_ ? impl_->pid : -1; }

void child::signal(int signo) noexcept {
    if (impl_ && !impl_->try_reap())
        impl_->send(signo);
}

namespace {

struct waiting_guard {
    bool& flag;
    explicit waiting_guard(bool& f, const std::string& command) : flag(f) {
        if (flag)
            throw_error(errc::invalid_argument,
                        "wait() or terminate() already in progress for " + command);
        flag = true;
    }
    ~waiting_guard() { flag = false; }
};

} // namespace

asio::awaitable<result> child::wait() {
    if (!impl_)
        throw_error(errc::invalid_argument, "wait() on a moved-from child");
    impl& d = *impl_;
    if (d.done)
        co_return d.res;
    waiting_guard guard(d.waiting, d.command);

    std::exception_ptr failure;
    bool timed_out = false;
    try {
        if (d.opts.timeout.count() > 0) {
            asio::steady_timer t(d.ex, d.started + d.opts.timeout);
            auto r = co_await localvm::detail::race(d.run_io(), t.async_wait(asio::use_awaitable));
            timed_out = r.index() == 1;
        } else {
            co_await d.run_io();
        }
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        // Cancelled by our caller: whatever the inner operations threw, the
        // documented completion is operation_aborted.
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none)
            failure = std::make_exception_ptr(
                boost::system::system_error(asio::error::operation_aborted, "waiting for " + d.command));
    }
    if (failure || timed_out) {
        // The stop sequence must run to its end even though our caller's
        // cancellation may already have fired (and may fire again): run it as
        // its own coroutine, unconnected to our cancellation slot, and allow
        // this cancelled coroutine to await it.
        const bool throw_if = co_await asio::this_coro::throw_if_cancelled();
        co_await asio::this_coro::throw_if_cancelled(false);
        std::exception_ptr stop_failure;
        try {
            co_await asio::co_spawn(d.ex, d.stop(d.opts.kill_grace),
                                    asio::bind_cancellation_slot(asio::cancellation_slot(),
                                                                 asio::use_awaitable));
        } catch (...) {
            stop_failure = std::current_exception();
        }
        co_await asio::this_coro::throw_if_cancelled(throw_if);
        if (!failure)
            failure = stop_failure;
    }
    d.finish(timed_out);
    if (failure)
        std::rethrow_exception(failure);
    co_return d.res;
}

asio::awaitable<result> child::terminate(std::chrono::milliseconds grace) {
    if (!impl_)
        throw_error(errc::invalid_argument, "terminate() on a moved-from child");
    impl& d = *impl_;
    if (d.done)
        co_return d.res;
    waiting_guard guard(d.waiting, d.command);
    std::exception_ptr failure;
    try {
        co_await d.stop(grace); // cancellation here: SIGKILL at once, then rethrown
    } catch (...) {
        failure = std::current_exception();
    }
    d.finish(false);
    if (failure)
        std::rethrow_exception(failure);
    co_return d.res;
}

asio::awaitable<result> run(options opts) {
    auto ex = co_await asio::this_coro::executor;
    child c(ex, std::move(opts));
    co_return co_await c.wait();
}

asio::awaitable<result> run_checked(options opts) {
    const std::string command = format_command(opts.argv);
    const auto timeout = opts.timeout;
    result r = co_await run(std::move(opts));
    if (r.success())
        co_return r;
    std::string msg = command + " " + r.describe();
    if (r.timed_out)
        msg += " after " + std::to_string(timeout.count()) + " ms";
    if (!r.err_tail.empty()) {
        msg += ":";
        for (const auto& l : r.err_tail)
            msg += (r.err_tail.size() == 1 ? " " : "\n  ") + l;
    }
    throw_error(r.timed_out ? errc::timeout : errc::process_failed, msg);
}

std::string result::describe() const {
    if (timed_out)
        return "timed out";
    if (signal != 0) {
        const char* abbrev = ::sigabbrev_np(signal);
        return "killed by signal " + std::to_string(signal) +
               (abbrev ? " (SIG" + std::string(abbrev) + ")" : std::string());
    }
    if (exit_code < 0)
        return "ended with an unknown status (reaped elsewhere)";
    return "exited with status " + std::to_string(exit_code);
}

std::string format_command(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv) {
        if (!out.empty())
            out += ' ';
        bool plain = !a.empty();
        for (unsigned char c : a) {
            if (!(std::isalnum(c) || std::string_view("_@%+=:,./-").find(static_cast<char>(c)) !=
                                         std::string_view::npos)) {
                plain = false;
                break;
            }
        }
        if (plain) {
            out += a;
            continue;
        }
        out += '\'';
        for (char c : a) {
            if (c == '\'')
                out += "'\\''";
            else
                out += c;
        }
        out += '\'';
    }
    return out;
}

} // namespace localvm::process
