// The QEMU backend's calls through the guest agent (exec, copy_in,
// copy_out, agent readiness) against the real agent, Debian's qemu-ga 7.2,
// run on the host (no guest needed), and against a silent fake agent (a
// unix socket that accepts and never answers). The same calls run in a
// real guest in the cloud suite.
#define BOOST_TEST_MODULE qemu_agent_calls
#include "agent_calls.hpp"

#include <localvm/error.hpp>
#include <localvm/qga/client.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "../qga/agent_process.hpp"
#include "detail/race.hpp"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace qga = localvm::qga;
namespace qd = localvm::qemu::detail;
using localvm::errc;
using localvm::test::agent_process;
using localvm::testing::run_coroutine;
using localvm::testing::step;
using namespace std::chrono_literals;
using stream = asio::local::stream_protocol;

namespace {

struct skip_without_agent {
    skip_without_agent() {
        if (!fs::exists(localvm::test::qemu_ga_path())) {
            std::fprintf(stderr, "qemu-ga not installed (package qemu-guest-agent): skipped\n");
            std::exit(77);
        }
    }
};
skip_without_agent skip_check;

std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string random_bytes(std::size_t n) {
    std::mt19937 gen(4711);
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(gen());
    return s;
}

void spit(const fs::path& path, const std::string& data, fs::perms mode) {
    std::ofstream(path, std::ios::binary) << data;
    fs::permissions(path, mode);
}

fs::perms mode_of(const fs::path& p) {
    return fs::status(p).permissions() & fs::perms::mask;
}

// Names in `dir` other than the ones given: what a copy left behind.
std::vector<std::string> strays(const fs::path& dir, std::vector<std::string> expected) {
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(dir)) {
        auto n = e.path().filename().string();
        if (std::find(expected.begin(), expected.end(), n) == expected.end())
            left.push_back(n);
    }
    return left;
}

// Whether a process whose command line contains `marker` runs on this host.
bool running_with(const std::string& marker) {
    for (const auto& e : fs::directory_iterator("/proc")) {
        auto cmdline = slurp(e.path() / "cmdline");
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        if (cmdline.find(marker) != std::string::npos) {
            BOOST_TEST_MESSAGE("running: " << e.path() << ": " << cmdline);
            return true;
        }
    }
    return false;
}

// Default options, named (no braces inside co_await expressions: GCC 12).
localvm::qemu::exec_options eo() { return localvm::qemu::exec_options(); }
localvm::qemu::copy_options cp() { return localvm::qemu::copy_options(); }

// A fresh agent and a client on it.
struct host_agent {
    agent_process process;
    fs::path files; // a directory for the copies, apart from the agent's own
    host_agent() {
        files = fs::path(process.dir()) / "files";
        fs::create_directory(files);
    }
    asio::awaitable<qga::client> connect() {
        co_await step("qemu-ga socket", process.wait_for_socket(10s));
        co_return co_await qga::client::connect(process.socket());
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(exec_returns_exit_status_and_separate_output) {
    host_agent a;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto c = co_await a.connect();
        std::vector<std::string> argv = {"sh", "-c", "echo to out; echo to err >&2; exit 7"};
        auto r = co_await qd::agent_exec(c, argv, eo());
        BOOST_TEST(r.exit_status == 7);
        BOOST_TEST(!r.signal);
        BOOST_TEST(r.out == "to out\n");
        BOOST_TEST(r.err == "to err\n");
        BOOST_TEST(r.pid > 0);

        localvm::qemu::exec_options o;
        o.input = std::string("line one\nline\0two\n", 18);
        o.env = {"WHO=the env", "PATH=/usr/bin:/bin"};
        argv = {"sh", "-c", "cat; echo \"$WHO\"; kill -TERM $$"};
        r = co_await qd::agent_exec(c, argv, o);
        BOOST_TEST(r.out == std::string("line one\nline\0two\nthe env\n", 26));
        BOOST_TEST(r.exit_status == -1);
        BOOST_TEST(r.signal.value_or(0) == 15);

        try {
            std::vector<std::string> none;
            co_await qd::agent_exec(c, none, eo());
            BOOST_FAIL("no error");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
        }
    });
}

BOOST_AUTO_TEST_CASE(exec_timeout_kills_the_program) {
    host_agent a;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto c = co_await a.connect();
        const std::string marker = "4711.25"; // sleep's argument: found in /proc
        localvm::qemu::exec_options o;
        o.timeout = 400ms;
        std::vector<std::string> argv = {"sleep", marker};
        try {
            co_await qd::agent_exec(c, argv, o);
            BOOST_FAIL("no timeout");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::timeout);
            std::string what = e.what();
            BOOST_TEST(what.find("timed out after 400 ms waiting for sleep (guest pid ") !=
                           std::string::npos,
                       what);
            BOOST_TEST(what.find("killed it (kill -9 through guest-exec)") != std::string::npos,
                       what);
        }
        BOOST_TEST(!running_with("sleep " + marker));
        // The channel is in step afterwards.
        std::vector<std::string> t = {"true"};
        auto r = co_await qd::agent_exec(c, t, eo());
        BOOST_TEST(r.exit_status == 0);
    });
}

BOOST_AUTO_TEST_CASE(exec_cancelled_kills_the_program) {
    host_agent a;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto c = co_await a.connect();
        const std::string marker = "4712.75";
        asio::steady_timer t(co_await asio::this_coro::executor, 500ms);
        std::vector<std::string> argv = {"sleep", marker};
        auto outcome = co_await localvm::detail::race(qd::agent_exec(c, argv, eo()),
                                                      t.async_wait(asio::use_awaitable));
        BOOST_TEST(outcome.index() == 1u);
        BOOST_TEST(!running_with("sleep " + marker));
        std::vector<std::string> again = {"sh", "-c", "exit 3"};
        auto r = co_await qd::agent_exec(c, again, eo());
        BOOST_TEST(r.exit_status == 3);
    });
}

BOOST_AUTO_TEST_CASE(copy_in_and_out_keep_bytes_and_modes) {
    host_agent a;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto c = co_await a.connect();
        const auto data = random_bytes(10 * 1024 * 1024 + 13);
        const auto src = a.files / "source";
        spit(src, data, fs::perms(0640));
        const auto guest = (a.files / "in guest").string(); // the host's agent: same filesystem
        co_await step("copy_in", qd::agent_copy_in(c, src, guest, cp()));
        BOOST_TEST(slurp(guest) == data);
        BOOST_TEST((mode_of(guest) == fs::perms(0640)));

        fs::permissions(guest, fs::perms(0751));
        const auto back = a.files / "back";
        spit(back, "old contents", fs::perms(0600));
        co_await step("copy_out", qd::agent_copy_out(c, guest, back, cp()));
        BOOST_TEST(slurp(back) == data);
        BOOST_TEST((mode_of(back) == fs::perms(0751)));

        // Small chunks, a last partial chunk, an empty file, a replaced file.
        localvm::qemu::copy_options small;
        small.chunk_size = 4096;
        spit(src, data.substr(0, 10000), fs::perms(0600));
        co_await qd::agent_copy_in(c, src, guest, small);
        BOOST_TEST(slurp(guest) == data.substr(0, 10000));
        co_await qd::agent_copy_out(c, guest, back, small);
        BOOST_TEST(slurp(back) == data.substr(0, 10000));
        spit(src, "", fs::perms(0644));
        co_await qd::agent_copy_in(c, src, guest, small);
        BOOST_TEST(fs::file_size(guest) == 0u);
        co_await qd::agent_copy_out(c, guest, back, small);
        BOOST_TEST(fs::file_size(back) == 0u);
        const auto left = strays(a.files, {"source", "in guest", "back"});
        BOOST_TEST(left.empty(), (left.empty() ? std::string() : left.front()));
    });
}

BOOST_AUTO_TEST_CASE(missing_paths_are_named_and_nothing_is_left) {
    host_agent a;
    run_coroutine([&]() -> asio::awaitable<void> {
        auto c = co_await a.connect();
        const auto keep = a.files / "keep";
        spit(keep, "untouched", fs::perms(0600));
        const auto nowhere = (a.files / "no such file").string();
        try {
            co_await qd::agent_copy_out(c, nowhere, keep, cp());
            BOOST_FAIL("no error");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::not_found);
            BOOST_TEST(std::string(e.what()).find("guest file " + nowhere + " does not exist") !=
                           std::string::npos,
                       e.what());
        }
        BOOST_TEST(slurp(keep) == "untouched");

        const auto in_missing_dir = (a.files / "no dir" / "file").string();
        try {
            co_await qd::agent_copy_in(c, keep, in_missing_dir, cp());
            BOOST_FAIL("no error");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::not_found);
            BOOST_TEST(std::string(e.what()).find("guest directory of " + in_missing_dir) !=
                           std::string::npos,
                       e.what());
        }
        try {
            co_await qd::agent_copy_in(c, a.files / "absent", (a.files / "x").string(), cp());
            BOOST_FAIL("no error");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::not_found);
        }
        try {
            co_await qd::agent_copy_out(c, a.files.string(), a.files / "dir copy", cp());
            BOOST_FAIL("no error");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
            BOOST_TEST(std::string(e.what()).find("is a directory") != std::string::npos,
                       e.what());
        }
        try {
            co_await qd::agent_copy_in(c, keep, "relative/path", cp());
            BOOST_FAIL("no error");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
        }
        // A copy that runs out of time leaves no temporary file either side.
        const auto big = a.files / "big";
        spit(big, random_bytes(8 * 1024 * 1024), fs::perms(0600));
        localvm::qemu::copy_options hurry;
        hurry.timeout = 20ms;
        hurry.chunk_size = 64 * 1024;
        try {
            co_await qd::agent_copy_in(c, big, (a.files / "big copy").string(), hurry);
            BOOST_FAIL("no timeout");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::timeout);
            BOOST_TEST(std::string(e.what()).find("copy_in of ") != std::string::npos, e.what());
        }
        try {
            co_await qd::agent_copy_out(c, big.string(), a.files / "big back", hurry);
            BOOST_FAIL("no timeout");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::timeout);
        }
        const auto left = strays(a.files, {"keep", "big"});
        BOOST_TEST(left.empty(), (left.empty() ? std::string() : left.front()));
    });
}

BOOST_AUTO_TEST_CASE(readiness_by_a_real_agent_and_a_silent_one) {
    host_agent a;
    run_coroutine([&]() -> asio::awaitable<void> {
        co_await step("qemu-ga socket", a.process.wait_for_socket(10s));
        co_await step("ready", qd::agent_wait_ready(a.process.socket(), 10000ms));

        // A socket that accepts and never answers: every call ends at its
        // deadline, naming itself.
        auto ex = co_await asio::this_coro::executor;
        const auto silent = (a.files / "silent.sock").string();
        stream::acceptor acceptor(ex, stream::endpoint(silent));
        try {
            co_await qd::agent_wait_ready(silent, 700ms);
            BOOST_FAIL("ready without an agent");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::timeout);
            std::string what = e.what();
            BOOST_TEST(what.find("timed out after 700 ms waiting for the guest agent on " +
                                 silent + " to answer guest-ping") != std::string::npos,
                       what);
        }
        qga::client_options co;
        co.call_timeout = 300ms;
        auto c = co_await qga::client::connect(silent, co);
        try {
            std::vector<std::string> argv = {"true"};
            co_await qd::agent_exec(c, argv, eo());
            BOOST_FAIL("an answer from nobody");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::timeout);
            std::string what = e.what();
            BOOST_TEST(what.find("guest-exec") != std::string::npos, what);
        }
    },
                  60s);
}
