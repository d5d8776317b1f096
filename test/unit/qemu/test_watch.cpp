// wait_for_path: inotify on the directory, no polling. Many waiters on one
// io_context share one inotify instance: instances are a small per-user
// resource (fs.inotify.max_user_instances), which one per waiter exhausted
// when a few hundred VMs started at once.
#define BOOST_TEST_MODULE qemu_watch
#include "watch.hpp"

#include "../../common/proc_util.hpp"

#include <localvm/testing/run.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <stdlib.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using localvm::qemu::detail::wait_for_path;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "localvm-watch-XXXXXX").string();
        path = ::mkdtemp(t.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

int inotify_fds() {
    int n = 0;
    for (const auto& [fd, target] : proc_util::fd_targets(::getpid()))
        if (target == "anon_inode:inotify")
            ++n;
    return n;
}

int max_user_instances() {
    std::ifstream f("/proc/sys/fs/inotify/max_user_instances");
    int n = 128;
    f >> n;
    return n;
}

} // namespace

BOOST_AUTO_TEST_CASE(more_waiters_than_inotify_instances_all_see_their_path) {
    temp_dir dir;
    fs::create_directory(dir.path / "a");
    fs::create_directory(dir.path / "b");
    const int n = max_user_instances() + 20;
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        int seen = 0, failed = 0;
        asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
        auto path = [&](int i) { return dir.path / (i % 2 ? "a" : "b") / std::to_string(i); };
        for (int i = 0; i < n; ++i)
            asio::co_spawn(ex, wait_for_path(path(i), 60s), [&](std::exception_ptr e, bool found) {
                if (e || !found)
                    ++failed;
                else
                    ++seen;
                if (seen + failed == n)
                    all_done.cancel();
            });
        // Every waiter has its watch now (each ran up to its first wait).
        co_await asio::post(ex, asio::use_awaitable);
        BOOST_TEST(inotify_fds() <= 2); // one instance (and its reader's dup)
        for (int i = 0; i < n; ++i)
            std::ofstream(path(i)) << "x";
        // The waiters finish on the same io_context (the run's deadline
        // catches one that does not).
        while (seen + failed < n)
            co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(failed == 0);
        BOOST_TEST(seen == n);
    }, 60s);
    BOOST_TEST(inotify_fds() <= 2);
}

BOOST_AUTO_TEST_CASE(existing_path_timeout_and_a_later_waiter) {
    temp_dir dir;
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        std::ofstream(dir.path / "there") << "x";
        BOOST_TEST(co_await wait_for_path(dir.path / "there", 10s));
        BOOST_TEST(!co_await wait_for_path(dir.path / "never", 50ms));
        // After the last waiter left, a new one still gets woken.
        auto ex = co_await asio::this_coro::executor;
        bool done = false, found = false;
        asio::steady_timer finished(ex, asio::steady_timer::time_point::max());
        asio::co_spawn(ex, wait_for_path(dir.path / "later", 30s),
                       [&](std::exception_ptr e, bool f) {
                           done = true;
                           found = !e && f;
                           finished.cancel();
                       });
        co_await asio::post(ex, asio::use_awaitable);
        std::ofstream(dir.path / "later") << "x";
        while (!done)
            co_await finished.async_wait(asio::as_tuple(asio::use_awaitable));
        BOOST_TEST(found);
    }, 60s);
}
