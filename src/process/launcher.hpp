// Internal: localvm's Boost.Process v2 launcher. Children are bp2 processes
// (`bp2::basic_process`, waited on through its pidfd handle), and bp2's
// initializers (`process_stdio`, `process_environment`, `process_start_dir`,
// `posix::bind_fd`, or one of ours) work with it, because it is called as
// bp2's own launchers are and derives from `posix::default_launcher`, whose
// type those initializers take.
//
// Why not Boost 1.81's `posix::default_launcher` itself (each checked by
// test/integration/process/test_launcher.cpp, which fails the day Boost
// fixes it):
// - after a failed exec the child calls exit(), not _exit(): the parent's
//   atexit handlers run in the child and stdio buffers are flushed twice;
// - it runs asio's notify_fork(fork_child) in the forked child, which
//   rebuilds the reactor there (allocating, which may deadlock after fork in
//   a threaded program);
// - its Linux close_all() compares each whitelisted fd with itself, so every
//   fd below its error pipe stays open in the child;
// - the on_error/on_exec_error/on_fork_error hooks of initializers are never
//   called (it looks for a signature that differs from the one it calls);
// - a child whose exec failed is never reaped (a zombie);
// - argv[0] is always the executable's path;
// - (and posix::bind_fd's on_setup returns no value: undefined behaviour;
//   the pidfd handle's async_wait calls a blocking waitpid on any readiness
//   of the pidfd, so a stale one blocks the io_context: child.cpp waits on
//   its own copy of the pidfd.)
// This one also gives the child default signal dispositions and an empty
// signal mask (not our SIG_IGN of SIGPIPE), can start it in a new session,
// and says which step failed (`failure`), for precise error messages.
#pragma once

#include <boost/asio/execution/executor.hpp>
#include <boost/asio/is_executor.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <filesystem>
#include <iterator>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "bp2.hpp"
#include "exec.hpp"
#include "sys/pidfd.hpp"
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace localvm::process::detail {

namespace launch_hooks {

namespace bp2 = boost::process::v2;
using boost::system::error_code;
using argv_t = const char* const*;

// Each hook is called when the initializer has it, with the signature bp2's
// initializers declare; otherwise it is a no-op.
template <class L, class I>
auto setup(L& l, const std::filesystem::path& exe, argv_t argv, I& init, int)
    -> decltype(init.on_setup(l, exe, argv)) {
    return init.on_setup(l, exe, argv);
}
template <class L, class I> error_code setup(L&, const std::filesystem::path&, argv_t, I&, long) {
    return {};
}

template <class L, class I>
auto exec_setup(L& l, const std::filesystem::path& exe, argv_t argv, I& init, int)
    -> decltype(init.on_exec_setup(l, exe, argv)) {
    return init.on_exec_setup(l, exe, argv);
}
template <class L, class I>
error_code exec_setup(L&, const std::filesystem::path&, argv_t, I&, long) {
    return {};
}

template <class L, class I>
auto on_error(L& l, const std::filesystem::path& exe, argv_t argv, const error_code& ec, I& init,
              int) -> decltype(init.on_error(l, exe, argv, ec), void()) {
    init.on_error(l, exe, argv, ec);
}
template <class L, class I>
void on_error(L&, const std::filesystem::path&, argv_t, const error_code&, I&, long) {}

template <class L, class I>
auto on_exec_error(L& l, const std::filesystem::path& exe, argv_t argv, const error_code& ec,
                   I& init, int) -> decltype(init.on_exec_error(l, exe, argv, ec), void()) {
    init.on_exec_error(l, exe, argv, ec);
}
template <class L, class I>
void on_exec_error(L&, const std::filesystem::path&, argv_t, const error_code&, I&, long) {}

template <class L, class I>
auto on_success(L& l, const std::filesystem::path& exe, argv_t argv, I& init, int)
    -> decltype(init.on_success(l, exe, argv), void()) {
    init.on_success(l, exe, argv);
}
template <class L, class I> void on_success(L&, const std::filesystem::path&, argv_t, I&, long) {}

} // namespace launch_hooks

/// A Boost.Process v2 launcher (see the top of this file): call it as bp2's
/// launchers are, `launcher()(executor, ec, executable, args, inits...)`, or
/// without `ec` to have a `boost::system::system_error` thrown. `args` are
/// the arguments after argv[0], as for bp2; `executable` is a path (no PATH
/// lookup here: exec_plan does that). The child is a vfork child: until
/// its exec it runs on the caller's memory, with the calling thread
/// suspended. Between vfork and exec only async-signal-safe calls are made,
/// so initializers' `on_exec_setup` and `on_exec_error` must make only those
/// too and write no memory (bp2's stdio, start_dir and bind_fd do not).
struct launcher : boost::process::v2::posix::default_launcher {
    /// argv[0] for the program; null means `executable`.
    const char* arg0 = nullptr;
    /// Start the child in a new session (setsid): no controlling terminal,
    /// its own process group.
    bool new_session = false;

    /// Which step failed, after a call that set `ec`.
    enum class step {
        none,
        setup,      ///< An initializer's on_setup (in the parent): `initializer` says which.
        report,     ///< The status pipe could not be created.
        fork,       ///< vfork() failed.
        exec_setup, ///< An initializer's on_exec_setup (in the child): `initializer` says which.
        exec,       ///< execve() failed.
        pidfd,      ///< pidfd_open() failed (Linux < 5.3); the child was killed.
    };
    step failure = step::none;
    /// With `step::setup`/`step::exec_setup`: the position of the failing
    /// initializer among `inits`.
    std::size_t initializer = 0;
    /// After a successful call: the pidfd that the returned process's handle
    /// owns (bp2 1.81 has no accessor for it), e.g. to `dup` for a wait of
    /// one's own.
    int pidfd = -1;

    template <class Executor, class Args, class... Inits>
    auto operator()(Executor exec, const std::filesystem::path& executable, Args&& args,
                    Inits&&... inits)
        -> std::enable_if_t<boost::asio::execution::is_executor<Executor>::value ||
                                boost::asio::is_executor<Executor>::value,
                            boost::process::v2::basic_process<Executor>> {
        boost::system::error_code ec;
        auto proc = (*this)(std::move(exec), ec, executable, std::forward<Args>(args),
                            std::forward<Inits>(inits)...);
        if (ec)
            throw boost::system::system_error(ec, "localvm launcher");
        return proc;
    }

    template <class Executor, class Args, class... Inits>
    auto operator()(Executor exec, boost::system::error_code& ec,
                    const std::filesystem::path& executable, Args&& args, Inits&&... inits)
        -> std::enable_if_t<boost::asio::execution::is_executor<Executor>::value ||
                                boost::asio::is_executor<Executor>::value,
                            boost::process::v2::basic_process<Executor>> {
        namespace bp2 = boost::process::v2;
        using process_type = bp2::basic_process<Executor>;
        ec.clear();
        failure = step::none;
        pid = -1;
        pidfd = -1;
        build_argv(executable, args);
        const char* const* argv = argv_.data();

        std::size_t index = 0;
        ((ec ? void()
             : (ec = launch_hooks::setup(*this, executable, argv, inits, 0),
                ec ? void() : void(++index))),
         ...);
        if (ec)
            return fail(std::move(exec), ec, step::setup, index, ec, executable, argv, inits...);

        int report[2];
        if (::pipe2(report, O_CLOEXEC) != 0)
            return fail(std::move(exec), ec, step::report, 0, errno_code(), executable, argv,
                        inits...);
        std::sort(fd_whitelist.begin(), fd_whitelist.end());
        // vfork, not fork: the child borrows our memory until its exec (or
        // _exit) and this thread waits until then, as in glibc's
        // posix_spawn. A fork copies the page tables of all our memory and
        // leaves it copy-on-write: 14 ms of CPU per child for a starter
        // holding a 512 MiB heap, 46 ms at 2 GiB, against a constant 0.05 ms
        // (bench/process/bench_child_spawn). So the child writes none of our
        // memory: it makes async-signal-safe calls on what is prepared here,
        // and no asio notify_fork (it touches no asio state before exec).
        // Every signal is blocked across it: a handler of ours must not run
        // in the child, on our memory, before in_child resets them all.
        sigset_t all, old_mask;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_SETMASK, &all, &old_mask);
        const pid_t child = ::vfork();
        if (child == 0) {
            ::close(report[0]);
            in_child(report[1], executable, argv, inits...);
        }
        const int vfork_errno = errno;
        ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
        if (child < 0) {
            ::close(report[0]);
            ::close(report[1]);
            return fail(std::move(exec), ec, step::fork, 0, sys_error(vfork_errno), executable,
                        argv, inits...);
        }
        pid = child;
        ::close(report[1]);
        auto outcome = read_reports(report[0]);
        ::close(report[0]);
        if (outcome.error) {
            reap();
            const int stage = outcome.error->stage;
            const auto e = sys_error(outcome.error->value);
            if (stage >= exec_setup_base)
                return fail(std::move(exec), ec, step::exec_setup,
                            static_cast<std::size_t>(stage - exec_setup_base), e, executable, argv,
                            inits...);
            return fail(std::move(exec), ec, step::exec, 0, e, executable, argv, inits...);
        }
        // Why pidfd: readable when this child exits, whatever SIGCHLD
        // handling the rest of the process has.
        pidfd = sys::pidfd_open(pid).release();
        if (pidfd < 0) {
            auto e = errno_code();
            ::kill(pid, SIGKILL);
            reap();
            return fail(std::move(exec), ec, step::pidfd, 0, e, executable, argv, inits...);
        }
        process_type proc(exec, pid, pidfd);
        (launch_hooks::on_success(*this, executable, argv, inits, 0), ...);
        return proc;
    }

private:
    // A failing initializer's position, sent as the report's stage.
    static constexpr int exec_setup_base = 1000;

    static boost::system::error_code sys_error(int e) {
        return {e, boost::system::system_category()};
    }
    static boost::system::error_code errno_code() { return sys_error(errno); }

    template <class Args>
    void build_argv(const std::filesystem::path& executable, const Args& args) {
        argv_.clear();
        argv_.push_back(arg0 ? arg0 : executable.c_str());
        for (const auto& a : args)
            argv_.push_back(boost::process::v2::cstring_ref(a).c_str());
        argv_.push_back(nullptr);
    }

    void reap() noexcept {
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        pid = -1;
    }

    template <class Executor, class... Inits>
    boost::process::v2::basic_process<Executor>
    fail(Executor exec, boost::system::error_code& ec, step s, std::size_t init,
         const boost::system::error_code e,
         [[maybe_unused]] const std::filesystem::path& executable,
         [[maybe_unused]] const char* const* argv, Inits&... inits) {
        ec = e;
        failure = s;
        initializer = init;
        (launch_hooks::on_error(*this, executable, argv, e, inits, 0), ...);
        return boost::process::v2::basic_process<Executor>(std::move(exec));
    }

    // A vfork child: only async-signal-safe calls from here to exec or
    // _exit, and no write to memory the parent uses (locals of these frames
    // are the child's own). Every signal arrives blocked; reset_signals sets
    // the dispositions to default, then empties the mask.
    template <class... Inits>
    [[noreturn]] void in_child(int report_fd, const std::filesystem::path& executable,
                               const char* const* argv, Inits&... inits) noexcept {
        if (new_session)
            ::setsid();
        reset_signals();
        boost::system::error_code ec;
        int index = 0;
        ((ec ? void()
             : (ec = launch_hooks::exec_setup(*this, executable, argv, inits, 0),
                ec ? void() : void(++index))),
         ...);
        if (ec) {
            (launch_hooks::on_exec_error(*this, executable, argv, ec, inits, 0), ...);
            write_report(report_fd, {'E', exec_setup_base + index, ec.value()});
            ::_exit(127);
        }
        close_fds_on_exec(fd_whitelist.data(), fd_whitelist.size());
        ::execve(executable.c_str(), const_cast<char* const*>(argv), const_cast<char* const*>(env));
        const int e = errno;
        (launch_hooks::on_exec_error(*this, executable, argv, sys_error(e), inits, 0), ...);
        write_report(report_fd, {'E', static_cast<int>(exec_stage::exec), e});
        ::_exit(127);
    }
};

} // namespace localvm::process::detail
