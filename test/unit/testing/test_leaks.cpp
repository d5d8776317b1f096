// The leak checker sees what a test leaves behind, by name, and nothing once
// it is cleaned up: an fd, a child (running, then a zombie), a process that
// works in a watched directory, a unix socket file.
#include <localvm/testing/leaks.hpp>
#define BOOST_TEST_MODULE testing_leaks
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using localvm::testing::find_leaks;
using localvm::testing::leak_check_options;
using localvm::testing::resource_snapshot;

namespace {

bool contains(const std::string& text, const std::string& needle) {
    return text.find(needle) != std::string::npos;
}

struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/lvleak-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// Blocks until `pid` has exited (without reaping it): waitid with WNOWAIT
// for a child, a pidfd's readability for any other process.
void wait_exited(pid_t pid, bool child) {
    if (child) {
        siginfo_t info{};
        BOOST_REQUIRE(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0);
        return;
    }
    int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pfd < 0)
        return; // already gone
    pollfd p{pfd, POLLIN, 0};
    BOOST_REQUIRE(::poll(&p, 1, -1) == 1);
    ::close(pfd);
}

} // namespace

// A Boost.Test timeout guards each blocking wait below.
BOOST_AUTO_TEST_CASE(nothing_new_is_clean, *boost::unit_test::timeout(60)) {
    auto before = resource_snapshot::take();
    auto r = find_leaks(before);
    BOOST_TEST(r.clean(), r.describe());
    BOOST_TEST(r.describe() == "");
}

BOOST_AUTO_TEST_CASE(an_open_fd_is_named_until_closed, *boost::unit_test::timeout(60)) {
    temp_dir dir;
    auto file = dir.path / "held open";
    auto before = resource_snapshot::take();
    int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    BOOST_REQUIRE(fd >= 0);
    auto r = find_leaks(before);
    BOOST_REQUIRE(r.fds.size() == 1u);
    BOOST_TEST(r.fds[0].fd == fd);
    BOOST_TEST(r.fds[0].target == file.string());
    BOOST_TEST(r.describe() ==
               "fd " + std::to_string(fd) + " -> " + file.string() + " is still open\n");
    ::close(fd);
    r = find_leaks(before);
    BOOST_TEST(r.clean(), r.describe());

    // The same number reused for something else is a new fd too.
    int first = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    BOOST_REQUIRE(first >= 0);
    auto with_null = resource_snapshot::take();
    ::close(first);
    int second = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    BOOST_REQUIRE(second == first);
    r = find_leaks(with_null);
    BOOST_REQUIRE(r.fds.size() == 1u);
    BOOST_TEST(r.fds[0].target == file.string());
    ::close(second);
}

BOOST_AUTO_TEST_CASE(a_child_is_named_running_then_as_a_zombie, *boost::unit_test::timeout(60)) {
    int gate[2];
    BOOST_REQUIRE(::pipe2(gate, O_CLOEXEC) == 0);
    auto before = resource_snapshot::take();
    pid_t pid = ::fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) {
        // Waits until the test closes the gate's write end.
        ::close(gate[1]);
        char c;
        while (::read(gate[0], &c, 1) > 0) {
        }
        ::_exit(0);
    }
    auto r = find_leaks(before);
    BOOST_REQUIRE(r.children.size() == 1u);
    BOOST_TEST(r.children[0].pid == pid);
    BOOST_TEST(r.children[0].state != 'Z');
    BOOST_TEST(contains(r.describe(), "child " + std::to_string(pid) + " ("), r.describe());
    BOOST_TEST(contains(r.describe(), "still runs"), r.describe());

    ::close(gate[1]);
    wait_exited(pid, true);
    r = find_leaks(before);
    BOOST_REQUIRE(r.children.size() == 1u);
    BOOST_TEST(r.children[0].state == 'Z');
    BOOST_TEST(contains(r.describe(), "zombie child " + std::to_string(pid) + " ("), r.describe());
    BOOST_TEST(contains(r.describe(), "was never reaped"), r.describe());

    int status = 0;
    BOOST_REQUIRE(::waitpid(pid, &status, 0) == pid);
    ::close(gate[0]);
    r = find_leaks(before);
    BOOST_TEST(r.clean(), r.describe());
}

BOOST_AUTO_TEST_CASE(a_process_working_in_a_watched_directory_is_named,
                     *boost::unit_test::timeout(60)) {
    temp_dir dir;
    temp_dir other;
    auto marker = (dir.path / "disk.qcow2").string();
    int gate[2], report[2];
    BOOST_REQUIRE(::pipe2(gate, O_CLOEXEC) == 0);
    BOOST_REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
    auto before = resource_snapshot::take();
    leak_check_options watch;
    watch.directories = {dir.path};

    // Not our child: a middle process forks it and exits (as QEMU is detached).
    pid_t middle = ::fork();
    BOOST_REQUIRE(middle >= 0);
    if (middle == 0) {
        pid_t worker = ::fork();
        if (worker == 0) {
            ::dup2(gate[0], 0);
            // sh waits on its stdin; $0 names the directory like a QEMU's -drive.
            ::execl("/bin/sh", "sh", "-c", "read x", marker.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        (void)!::write(report[1], &worker, sizeof worker);
        ::_exit(0);
    }
    ::close(report[1]);
    pid_t worker = 0;
    BOOST_REQUIRE(::read(report[0], &worker, sizeof worker) == sizeof worker);
    // EOF once every write end is gone: the middle's at its exit, the
    // worker's (close-on-exec) at its exec, so its command line is final.
    char eof;
    BOOST_REQUIRE(::read(report[0], &eof, 1) == 0);
    int status = 0;
    BOOST_REQUIRE(::waitpid(middle, &status, 0) == middle);
    ::close(gate[0]);
    ::close(report[0]);

    auto r = find_leaks(before, watch);
    BOOST_REQUIRE(r.processes.size() == 1u);
    BOOST_TEST(r.processes[0].pid == worker);
    BOOST_TEST(r.processes[0].command_line == "sh -c read x " + marker);
    BOOST_TEST(r.describe() == "process " + std::to_string(worker) +
                                   " (sh) still runs: sh -c read x " + marker + "\n");
    BOOST_TEST(r.children.empty());
    // A directory whose name only starts the same way is another directory.
    leak_check_options prefix;
    prefix.directories = {dir.path.string().substr(0, dir.path.string().size() - 1)};
    BOOST_TEST(find_leaks(before, prefix).processes.empty());
    leak_check_options elsewhere;
    elsewhere.directories = {other.path};
    BOOST_TEST(find_leaks(before, elsewhere).clean());

    ::close(gate[1]); // sh reads EOF and exits
    wait_exited(worker, false);
    r = find_leaks(before, watch);
    BOOST_TEST(r.clean(), r.describe());
}

BOOST_AUTO_TEST_CASE(a_socket_file_is_named_until_removed, *boost::unit_test::timeout(60)) {
    temp_dir dir;
    fs::create_directories(dir.path / "run" / "vm");
    auto path = dir.path / "run" / "vm" / "qmp.sock";
    auto before = resource_snapshot::take();
    leak_check_options watch;
    watch.directories = {dir.path};

    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(s >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    BOOST_REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    auto r = find_leaks(before, watch);
    BOOST_TEST(r.sockets == std::vector<fs::path>{path});
    BOOST_REQUIRE(r.fds.size() == 1u);
    BOOST_TEST(r.fds[0].target.rfind("socket:[", 0) == 0u, r.fds[0].target);
    BOOST_TEST(contains(r.describe(), "socket " + path.string() + " is left behind"), r.describe());

    ::close(s);
    r = find_leaks(before, watch);
    BOOST_TEST(r.sockets.size() == 1u); // closing does not remove the file
    fs::remove(path);
    r = find_leaks(before, watch);
    BOOST_TEST(r.clean(), r.describe());
}
