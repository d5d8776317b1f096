// Pure parts of the process layer: command formatting, result descriptions,
// exit status files, and the pid queries on processes that need no spawning.
#define BOOST_TEST_MODULE process_format
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/testing/run.hpp>

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>

#include <csignal>
#include <unistd.h>

namespace lp = localvm::process;
namespace fs = std::filesystem;

BOOST_AUTO_TEST_CASE(format_command_quotes_only_where_needed) {
    BOOST_TEST(lp::format_command({}) == "");
    BOOST_TEST(lp::format_command({"qemu-img", "create", "-f", "qcow2", "/tmp/a.qcow2", "10G"}) ==
               "qemu-img create -f qcow2 /tmp/a.qcow2 10G");
    BOOST_TEST(lp::format_command({"echo", "a b", ""}) == "echo 'a b' ''");
    BOOST_TEST(lp::format_command({"sh", "-c", "echo 'x'; exit 1"}) ==
               "sh -c 'echo '\\''x'\\''; exit 1'");
    BOOST_TEST(lp::format_command({"a$b", "c*", "d\ne", "user@host:path,x=1+2%"}) ==
               "'a$b' 'c*' 'd\ne' user@host:path,x=1+2%");
    BOOST_TEST(lp::format_command({std::string("nul\0x", 5)}) == std::string("'nul\0x'", 7));
}

BOOST_AUTO_TEST_CASE(result_describes_how_the_child_ended) {
    lp::result r;
    r.exit_code = 0;
    BOOST_TEST(r.success());
    BOOST_TEST(r.describe() == "exited with status 0");
    r.exit_code = 3;
    BOOST_TEST(!r.success());
    BOOST_TEST(r.describe() == "exited with status 3");
    r.exit_code = -1;
    r.signal = SIGKILL;
    BOOST_TEST(!r.success());
    BOOST_TEST(r.describe() == "killed by signal 9 (SIGKILL)");
    r.signal = SIGTERM;
    BOOST_TEST(r.describe() == "killed by signal 15 (SIGTERM)");
    r.timed_out = true;
    BOOST_TEST(r.describe() == "timed out");
    lp::result ok_but_late;
    ok_but_late.exit_code = 0;
    ok_but_late.timed_out = true;
    BOOST_TEST(!ok_but_late.success());
}

BOOST_AUTO_TEST_CASE(read_exit_status_parses_what_the_supervisor_writes) {
    auto dir = fs::temp_directory_path() / ("localvm-status-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto write = [&](const std::string& text) {
        std::ofstream(dir / "status") << text;
        return lp::read_exit_status(dir / "status");
    };
    BOOST_TEST(!lp::read_exit_status(dir / "absent").has_value());
    auto a = write("exited 3\n");
    BOOST_REQUIRE(a);
    BOOST_TEST(a->how == "exited");
    BOOST_TEST(a->number == 3);
    auto b = write("signaled 15\n");
    BOOST_REQUIRE(b);
    BOOST_TEST(b->how == "signaled");
    BOOST_TEST(b->number == 15);
    BOOST_TEST(!b->abandoned);
    auto c = write("signaled 9 abandoned\n");
    BOOST_REQUIRE(c);
    BOOST_TEST(c->how == "signaled");
    BOOST_TEST(c->number == 9);
    BOOST_TEST(c->abandoned);
    auto d = write("exited 0 other\nabandoned\n");
    BOOST_REQUIRE(d);
    BOOST_TEST(!d->abandoned);
    BOOST_TEST(!write("").has_value());
    BOOST_TEST(!write("running 1\n").has_value());
    BOOST_TEST(!write("exited\n").has_value());
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(alive_and_wait_exit_on_pids_without_spawning) {
    BOOST_TEST(lp::alive(::getpid()));
    BOOST_TEST(!lp::alive(0));
    BOOST_TEST(!lp::alive(-5));
    // A pid above pid_max cannot exist.
    BOOST_TEST(!lp::alive(4194304 + 1));
    localvm::testing::run_coroutine([]() -> boost::asio::awaitable<void> {
        bool exited1 = co_await lp::wait_exit(4194304 + 1, std::chrono::seconds(5));
        BOOST_TEST(exited1);
        // Our own process does not exit while we wait for it.
        bool exited2 = co_await lp::wait_exit(::getpid(), std::chrono::milliseconds(20));
        BOOST_TEST(!exited2);
        // A negative timeout just checks (zero is no_deadline: no limit).
        bool exited3 = co_await lp::wait_exit(::getpid(), std::chrono::milliseconds(-1));
        BOOST_TEST(!exited3);
    }, std::chrono::seconds(30));
}
