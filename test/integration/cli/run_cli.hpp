// Running the built localvm command from a test: its path comes from the
// LOCALVM_BIN environment variable (set by meson), XDG directories are
// temporary, output is captured. Synchronous: each run has its own io_context.
#pragma once

#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../common/pty.hpp"
#include <stdlib.h>
#include <unistd.h>

namespace lvcli {

namespace fs = std::filesystem;

/// How one run of the command ended.
struct outcome {
    int status = -1;
    std::string out;
    std::string err;
    /// stderr split into lines (without the newlines).
    std::vector<std::string> err_lines() const {
        std::vector<std::string> lines;
        std::string::size_type from = 0;
        while (from < err.size()) {
            auto nl = err.find('\n', from);
            lines.push_back(err.substr(from, nl == std::string::npos ? nl : nl - from));
            if (nl == std::string::npos)
                break;
            from = nl + 1;
        }
        return lines;
    }
};

inline fs::path binary() {
    const char* b = std::getenv("LOCALVM_BIN");
    if (!b || !*b)
        localvm::throw_error(localvm::errc::not_found, "LOCALVM_BIN is not set");
    return b;
}

/// A scratch directory with XDG data and runtime directories in it, removed at the end.
struct scratch {
    fs::path root;
    scratch() {
        char tmpl[] = "/tmp/lvcli-XXXXXX";
        root = ::mkdtemp(tmpl);
        fs::create_directories(root / "data");
        fs::create_directories(root / "run");
        fs::permissions(root / "run", fs::perms::owner_all);
    }
    ~scratch() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    scratch(const scratch&) = delete;
    scratch& operator=(const scratch&) = delete;

    /// The environment a run gets: XDG dirs here, no LOCALVM_ACCEL surprise.
    std::vector<std::string> env() const {
        return {"XDG_DATA_HOME=" + (root / "data").string(),
                "XDG_RUNTIME_DIR=" + (root / "run").string()};
    }
};

/// Runs `program args...` with stdin /dev/null to completion on its own
/// io_context, capturing stdout and stderr.
inline outcome run_program(std::vector<std::string> argv, std::vector<std::string> env = {}) {
    localvm::process::options o;
    o.argv = std::move(argv);
    o.env_overrides = std::move(env);
    boost::asio::io_context io;
    std::optional<localvm::process::result> r;
    std::exception_ptr failure;
    boost::asio::co_spawn(io, localvm::process::run(std::move(o)),
                          [&](std::exception_ptr e, localvm::process::result res) {
                              failure = e;
                              if (!e)
                                  r = std::move(res);
                          });
    io.run();
    if (failure)
        std::rethrow_exception(failure);
    return outcome{r->signal ? 128 + r->signal : r->exit_code, r->out, r->err};
}

/// An empty 64 MiB qcow2 image, `s.root/base.qcow2`, for `create --base`.
inline fs::path make_base_image(const scratch& s) {
    auto base = s.root / "base.qcow2";
    auto mk = run_program({"qemu-img", "create", "-q", "-f", "qcow2", base.string(), "64M"});
    if (mk.status != 0)
        throw std::runtime_error("qemu-img create failed: " + mk.err);
    return base;
}

/// Runs `localvm args...` (see run_program).
inline outcome run(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), binary().string());
    return run_program(std::move(args), std::move(env));
}

/// Runs `localvm args...` with the slave side of `terminal` as its stdin
/// and stdout (stderr is captured), while `user` plays the person at that
/// terminal: it is given the pty's master to type into and read from. Both
/// run on one io_context until both are done; the master stays open until
/// then, so the command can restore the terminal as it leaves. Throws
/// `errc::timeout` when `deadline` passes first (the command is then killed).
inline outcome run_on_terminal(
    std::vector<std::string> args, std::vector<std::string> env, lvtest::pty& terminal,
    std::function<boost::asio::awaitable<void>(boost::asio::posix::stream_descriptor&)> user,
    std::chrono::seconds deadline) {
    using namespace boost::asio::experimental::awaitable_operators;
    localvm::process::options o;
    o.argv = std::move(args);
    o.argv.insert(o.argv.begin(), binary().string());
    o.env_overrides = std::move(env);
    o.stdin_mode = localvm::process::input_mode::inherit;
    o.stdin_fd = terminal.slave;
    o.out.mode = localvm::process::stream_mode::inherit;
    o.out.inherit_fd = terminal.slave;
    std::optional<localvm::process::result> r;
    localvm::testing::run_coroutine(
        [&]() -> boost::asio::awaitable<void> {
            auto ex = co_await boost::asio::this_coro::executor;
            // A dup: `terminal` keeps its own master fd.
            int fd = ::dup(terminal.master);
            if (fd < 0)
                localvm::throw_error(localvm::errc::io_error, "dup of the pty master failed");
            boost::asio::posix::stream_descriptor master(ex, fd);
            auto res = co_await (localvm::process::run(o) && user(master));
            r = std::move(res);
        },
        deadline, localvm::process::format_command(o.argv));
    return outcome{r->signal ? 128 + r->signal : r->exit_code, r->out, r->err};
}

inline std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Whatever the test did, no QEMU of VM `name` outlives it: `stop NAME -q`
/// when the guard goes (errors ignored: the VM may be stopped already).
struct stop_at_exit {
    std::string name;
    std::vector<std::string> env;
    ~stop_at_exit() {
        try {
            run({"stop", name, "-q"}, env);
        } catch (...) {
        }
    }
};

} // namespace lvcli
