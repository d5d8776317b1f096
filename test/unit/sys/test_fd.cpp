// sys::unique_fd, sys::write_all, sys::errno_text and sys::throw_errno
// (src/sys/fd.hpp, src/sys/errno.hpp).
#define BOOST_TEST_MODULE sys_fd
#include <localvm/error.hpp>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

using localvm::errc;
using localvm::sys::unique_fd;
using localvm::sys::write_all;

namespace {

bool is_open(int fd) {
    return ::fcntl(fd, F_GETFD) >= 0;
}

unique_fd open_null() {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    BOOST_REQUIRE(fd >= 0);
    return unique_fd(fd);
}

} // namespace

BOOST_AUTO_TEST_CASE(unique_fd_closes_what_it_owns) {
    int raw = -1;
    {
        auto fd = open_null();
        raw = fd.get();
        BOOST_TEST(static_cast<bool>(fd));
        BOOST_TEST(is_open(raw));
    }
    BOOST_TEST(!is_open(raw));
}

BOOST_AUTO_TEST_CASE(unique_fd_empty_release_move_reset) {
    unique_fd none;
    BOOST_TEST(none.get() == -1);
    BOOST_TEST(!static_cast<bool>(none));
    BOOST_TEST(unique_fd(-7).get() == -1); // any negative value is none

    auto a = open_null();
    const int raw = a.get();
    unique_fd b(std::move(a));
    BOOST_TEST(a.get() == -1);
    BOOST_TEST(b.get() == raw);
    unique_fd c;
    c = std::move(b);
    BOOST_TEST(c.get() == raw);
    BOOST_TEST(is_open(raw));

    c.reset(raw); // the same fd again: kept, not closed
    BOOST_TEST(is_open(raw));

    auto other = open_null();
    const int raw2 = other.release();
    BOOST_TEST(other.get() == -1);
    c.reset(raw2); // closes the first
    BOOST_TEST(!is_open(raw));
    BOOST_TEST(c.get() == raw2);

    int released = c.release();
    BOOST_TEST(released == raw2);
    BOOST_TEST(is_open(raw2)); // released, not closed
    ::close(raw2);
}

BOOST_AUTO_TEST_CASE(unique_fd_move_assignment_closes_the_old_one) {
    auto a = open_null();
    auto b = open_null();
    const int old = a.get();
    const int kept = b.get();
    a = std::move(b);
    BOOST_TEST(!is_open(old));
    BOOST_TEST(a.get() == kept);
    BOOST_TEST(is_open(kept));
}

namespace {

// The SIGALRM handler drains the pipe a little each time, so the blocked
// writer can only progress after a signal interrupted it.
int drain_fd = -1;
volatile sig_atomic_t interruptions = 0;
char drained_buf[1 << 20];
volatile std::size_t drained_len = 0;

extern "C" void on_alarm(int) {
    const int saved = errno;
    interruptions = interruptions + 1;
    std::size_t len = drained_len;
    ssize_t n =
        ::read(drain_fd, drained_buf + len, std::min<std::size_t>(1000, sizeof drained_buf - len));
    if (n > 0)
        drained_len = len + static_cast<std::size_t>(n);
    errno = saved;
}

} // namespace

BOOST_AUTO_TEST_CASE(write_all_survives_eintr_and_short_writes) {
    int p[2];
    BOOST_REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    unique_fd r(p[0]), w(p[1]);
    BOOST_REQUIRE(::fcntl(w.get(), F_SETPIPE_SZ, 4096) >= 4096);
    BOOST_REQUIRE(::fcntl(r.get(), F_SETFL, O_NONBLOCK) == 0);
    drain_fd = r.get();
    drained_len = 0;
    interruptions = 0;

    // No SA_RESTART: a blocked write(2) returns EINTR, or the bytes it wrote
    // so far (a short write).
    struct sigaction sa {
    }, old{};
    sa.sa_handler = on_alarm;
    ::sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    BOOST_REQUIRE(::sigaction(SIGALRM, &sa, &old) == 0);
    itimerval every{{0, 500}, {0, 500}};
    BOOST_REQUIRE(::setitimer(ITIMER_REAL, &every, nullptr) == 0);

    std::string data(64 * 1024, '\0');
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
    errno = 0;
    const std::size_t written = write_all(w.get(), data.data(), data.size());
    const int err = errno;

    itimerval off{};
    ::setitimer(ITIMER_REAL, &off, nullptr);
    ::sigaction(SIGALRM, &old, nullptr);

    BOOST_TEST(written == data.size(), "errno " << err);
    // At most 4 KiB fit without the handler: the rest needed interruptions.
    BOOST_TEST(interruptions >= static_cast<int>((data.size() - 4096) / 1000));
    std::string got(drained_buf, drained_len);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(r.get(), buf, sizeof buf)) > 0)
        got.append(buf, static_cast<std::size_t>(n));
    BOOST_TEST(got.size() == data.size());
    BOOST_TEST((got == data));
}

BOOST_AUTO_TEST_CASE(write_all_reports_how_far_it_got) {
    // Nothing to write: nothing done, no write at all (even to a bad fd).
    BOOST_TEST(write_all(-1, "x", 0) == 0u);

    errno = 0;
    BOOST_TEST(write_all(-1, "abc", 3) == 0u);
    BOOST_TEST(errno == EBADF);

    // A full non-blocking pipe: what fit, then EAGAIN.
    int p[2];
    BOOST_REQUIRE(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
    unique_fd r(p[0]), w(p[1]);
    const int cap = ::fcntl(w.get(), F_SETPIPE_SZ, 4096);
    BOOST_REQUIRE(cap >= 4096);
    std::string data(static_cast<std::size_t>(cap) + 100, 'z');
    errno = 0;
    BOOST_TEST(write_all(w.get(), data.data(), data.size()) == static_cast<std::size_t>(cap));
    BOOST_TEST(errno == EAGAIN);
}

BOOST_AUTO_TEST_CASE(errno_text_and_throw_errno) {
    BOOST_TEST(localvm::sys::errno_text(ENOENT) == std::string(std::strerror(ENOENT)));
    BOOST_TEST(localvm::sys::errno_text(EACCES) == "Permission denied");
    BOOST_TEST(!localvm::sys::errno_text(99999).empty());
    try {
        localvm::sys::throw_errno(errc::io_error, "cannot open /x", ENOENT);
        BOOST_FAIL("no throw");
    } catch (const localvm::error& e) {
        BOOST_TEST((e.code() == errc::io_error));
        BOOST_TEST(std::string(e.what()).find("cannot open /x: No such file or directory") !=
                   std::string::npos);
    }
}

namespace {

// The SIGALRM handler feeds the pipe a little each time, so the blocked
// reader can only progress after a signal interrupted it.
int feed_fd = -1;
const char* feed_data = nullptr;
volatile std::size_t feed_left = 0;

extern "C" void on_alarm_feed(int) {
    const int saved = errno;
    interruptions = interruptions + 1;
    const std::size_t left = feed_left;
    const std::size_t k = std::min<std::size_t>(700, left);
    if (k > 0) {
        ssize_t n = ::write(feed_fd, feed_data, k);
        if (n > 0) {
            feed_data += n;
            feed_left = feed_left - static_cast<std::size_t>(n);
        }
    }
    if (feed_left == 0 && feed_fd >= 0) {
        ::close(feed_fd); // end of file after the last piece
        feed_fd = -1;
    }
    errno = saved;
}

} // namespace

BOOST_AUTO_TEST_CASE(read_full_survives_eintr_and_short_reads_then_reports_eof) {
    int p[2];
    BOOST_REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    unique_fd r(p[0]);
    std::string data(20000, '\0');
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<char>('A' + (i * 13 + i / 97) % 26);
    feed_fd = p[1];
    feed_data = data.data();
    feed_left = data.size();
    interruptions = 0;

    struct sigaction sa {
    }, old{};
    sa.sa_handler = on_alarm_feed;
    ::sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: the blocked read(2) sees EINTR
    BOOST_REQUIRE(::sigaction(SIGALRM, &sa, &old) == 0);
    itimerval every{{0, 500}, {0, 500}};
    BOOST_REQUIRE(::setitimer(ITIMER_REAL, &every, nullptr) == 0);

    std::string got(data.size() + 10, '\0');
    errno = -1;
    const std::size_t n = localvm::sys::read_full(r.get(), got.data(), got.size());
    const int err = errno;

    itimerval off{};
    ::setitimer(ITIMER_REAL, &off, nullptr);
    ::sigaction(SIGALRM, &old, nullptr);
    if (feed_fd >= 0)
        ::close(feed_fd);

    BOOST_TEST(n == data.size()); // all of it, then end of file
    BOOST_TEST(err == 0);
    BOOST_TEST(interruptions >= static_cast<int>(data.size() / 700));
    got.resize(n);
    BOOST_TEST((got == data));
}

BOOST_AUTO_TEST_CASE(read_full_reports_errors) {
    char buf[8];
    BOOST_TEST(localvm::sys::read_full(-1, buf, 0) == 0u);
    errno = 0;
    BOOST_TEST(localvm::sys::read_full(-1, buf, sizeof buf) == 0u);
    BOOST_TEST(errno == EBADF);
    int p[2];
    BOOST_REQUIRE(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
    unique_fd r(p[0]), w(p[1]);
    BOOST_REQUIRE(::write(w.get(), "abc", 3) == 3);
    errno = 0;
    BOOST_TEST(localvm::sys::read_full(r.get(), buf, sizeof buf) == 3u);
    BOOST_TEST(errno == EAGAIN); // the rest is not there yet
}
