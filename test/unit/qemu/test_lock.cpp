// The VM lock: one holder at a time, even when a holder deletes the file
// (as remove does), and never through a link or on a FIFO; and QEMU's
// image locks as running() falls back on them.
#define BOOST_TEST_MODULE qemu_lock
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <functional>

#include "lock.hpp"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using localvm::qemu::detail::vm_lock;
using namespace std::chrono_literals;

namespace {
// Runs once, just before the next flock() the library makes.
std::function<void()> before_next_flock;
} // namespace

// The library's flock goes through here (the executable's definition wins
// over libc's), so a test can act between its open() and its flock().
extern "C" int flock(int fd, int operation) noexcept {
    if (before_next_flock) {
        auto f = std::move(before_next_flock);
        before_next_flock = nullptr;
        f();
    }
    return static_cast<int>(::syscall(SYS_flock, fd, operation));
}

namespace {

struct scratch {
    fs::path root;
    scratch() {
        char tmpl[] = "/tmp/lv-lock-XXXXXX";
        BOOST_REQUIRE(::mkdtemp(tmpl));
        root = tmpl;
    }
    ~scratch() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
};

// Whether a fresh open of `path` can take the lock now (and lets go at once).
bool lockable(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    BOOST_REQUIRE(fd >= 0);
    bool ok = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    ::close(fd);
    return ok;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_holder_that_deletes_the_file_leaves_one_holder) {
    scratch s;
    auto path = s.root / "lock";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            // A holder (a `remove` in another process) has the lock ...
            int held = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            BOOST_REQUIRE(held >= 0);
            BOOST_REQUIRE(::flock(held, LOCK_EX) == 0);
            // ... and, after we opened the file but before our flock, it
            // deletes the file and lets go.
            before_next_flock = [&] {
                ::unlink(path.c_str());
                ::close(held);
            };
            auto lock = co_await vm_lock::acquire(path, s.root / "lock.sock", 5000ms, "test");
            BOOST_TEST(!before_next_flock);
            // Ours must be the lock everyone else meets at the path.
            BOOST_TEST(fs::exists(path));
            BOOST_TEST(!lockable(path), "a second process could take the lock too");
        },
        20s);
    BOOST_TEST(lockable(path)); // released with `lock`
}

BOOST_AUTO_TEST_CASE(a_missing_directory_is_made_again_by_prepare) {
    scratch s;
    auto dir = s.root / "run" / "vm";
    int prepared = 0;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto lock =
                co_await vm_lock::acquire(dir / "lock", dir / "lock.sock", 5000ms, "test", [&] {
                    ++prepared;
                    fs::create_directories(dir);
                });
            BOOST_TEST(!lockable(dir / "lock"));
        },
        20s);
    BOOST_TEST(prepared == 1);
}

BOOST_AUTO_TEST_CASE(a_link_or_fifo_at_the_lock_file_is_refused) {
    scratch s;
    auto victim = s.root / "victim";
    { std::ofstream(victim) << "x"; }
    auto link = s.root / "lock";
    fs::create_symlink(victim, link);
    auto fifo = s.root / "fifo-lock";
    BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            for (const auto& [p, needle] :
                 {std::pair{link, "symbolic link"}, std::pair{fifo, "not a regular file"}}) {
                try {
                    co_await vm_lock::acquire(p, s.root / "lock.sock", 1000ms, "test");
                    BOOST_FAIL("locked " << p);
                } catch (const localvm::error& e) {
                    BOOST_TEST(e.code() == errc::unsupported, e.what());
                    BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, e.what());
                }
            }
        },
        20s);
    BOOST_TEST(fs::file_size(victim) == 1u);
}

BOOST_AUTO_TEST_CASE(qemu_image_locks_are_seen) {
    using localvm::qemu::detail::image_in_use;
    scratch s;
    auto disk = s.root / "disk.qcow2";
    BOOST_TEST(!image_in_use(disk)); // absent
    { std::ofstream(disk) << std::string(512, '\0'); }
    BOOST_TEST(!image_in_use(disk));
    // As QEMU 7.2 locks a qcow2 it runs (shared OFD locks, 100-101, 103, 201, 203).
    int fd = ::open(disk.c_str(), O_RDONLY | O_CLOEXEC);
    BOOST_REQUIRE(fd >= 0);
    for (off_t b : {100, 203}) {
        struct flock fl {};
        fl.l_type = F_RDLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = b;
        fl.l_len = 1;
        BOOST_REQUIRE(::fcntl(fd, F_OFD_SETLK, &fl) == 0);
        BOOST_TEST(image_in_use(disk), "byte " << b);
        fl.l_type = F_UNLCK;
        BOOST_REQUIRE(::fcntl(fd, F_OFD_SETLK, &fl) == 0);
        BOOST_TEST(!image_in_use(disk));
    }
    ::close(fd);
}
