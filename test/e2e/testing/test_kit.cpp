#define BOOST_TEST_MODULE e2e_testing_kit
#include <localvm/process/child.hpp>
#include <localvm/testing/boost.hpp>

#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>

#include <stdlib.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace lt = localvm::testing;
using localvm::errc;
using namespace std::chrono_literals;

namespace {

lt::vm_spec tiny(const std::string& name) {
    lt::vm_spec s;
    s.name = name;
    s.start.cpus = 1;
    s.start.memory = "512M";
    s.start.boot = lt::guest_image::load("tiny").boot();
    return s;
}

// True when a process runs whose command line mentions `text`.
bool process_mentions(const std::string& text) {
    for (const auto& d : fs::directory_iterator("/proc")) {
        std::ifstream in(d.path() / "cmdline");
        std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (cmd.find(text) != std::string::npos)
            return true;
    }
    return false;
}

// Runs `f`, which must throw localvm::error with `expected`; returns what().
std::string caught(const std::function<void()>& f, boost::system::error_code expected) {
    try {
        f();
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == expected, e.what());
        return e.what();
    }
    BOOST_FAIL("expected an error");
    return {};
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_CASE(three_vms_at_once_helpers_failures_and_a_clean_teardown) {
    fs::path root;
    std::vector<pid_t> pids;
    {
        lt::vm_set set;
        root = set.root();
        set.add(tiny("a"));
        set.add(tiny("b"));
        auto c = tiny("c");
        c.start.ports = {{"127.0.0.1", 0, 22}, {"127.0.0.1", 0, 8080}};
        set.add(c);

        // Three guests boot concurrently on one io_context; each has its ports.
        set.run(
            [&](lt::vm_set& s) -> asio::awaitable<void> {
                std::set<std::uint16_t> ports;
                for (const auto& n : s.names()) {
                    auto& v = s[n];
                    ports.insert(co_await v.host_port(22));
                    co_await v.expect_output("echo hello from $(hostname)", "hello from " + n + "\n");
                    auto pid = co_await v.manager().pid();
                    BOOST_REQUIRE(pid.has_value());
                    pids.push_back(*pid);
                }
                BOOST_TEST(ports.size() == 3u, "each VM has its own SSH port");
                co_await s["a"].expect_status("echo out; exit 7", 7);

                // Failed expectations name the command and show the output.
                std::string msg;
                try {
                    co_await s["b"].expect_output("echo actual", "wanted\n");
                } catch (const localvm::error& e) {
                    BOOST_TEST(e.code() == lt::kit_errc::check_failed);
                    msg = e.what();
                }
                BOOST_TEST(has(msg, "`echo actual` on vm 'b' printed:"), msg);
                BOOST_TEST(has(msg, "| actual"), msg);
                BOOST_TEST(has(msg, "| wanted"), msg);
                msg.clear();
                try {
                    co_await s["b"].output("echo some-stderr >&2; exit 3");
                } catch (const localvm::error& e) {
                    BOOST_TEST(e.code() == lt::kit_errc::check_failed);
                    msg = e.what();
                }
                BOOST_TEST(has(msg, "exited with 3, expected 0"), msg);
                BOOST_TEST(has(msg, "| some-stderr"), msg);

                // A guest port nobody listens on: QEMU accepts, the guest
                // refuses, so it is not reported open. Once a server listens,
                // it is.
                auto& w = s["c"];
                msg.clear();
                try {
                    co_await w.wait_for_port(8080, 1500ms);
                } catch (const localvm::error& e) {
                    BOOST_TEST(e.code() == errc::timeout);
                    msg = e.what();
                }
                BOOST_TEST(has(msg, "guest port 8080 of vm 'c'"), msg);
                co_await w.expect_status(
                    "busybox httpd -p 8080 -h /tmp </dev/null >/dev/null 2>&1");
                auto host = co_await w.wait_for_port(8080, 60s);
                auto forwarded = co_await w.host_port(8080);
                BOOST_TEST(host == forwarded);

                // copy_in and wait_for_console.
                auto src = s.root() / "payload";
                fs::create_directories(src);
                std::ofstream(src / "file one") << "payload\n";
                co_await w.copy_in(src.string() + "/", "/tmp/payload");
                co_await w.expect_output("cat '/tmp/payload/file one'", "payload\n");
                co_await w.copy_out("/tmp/payload/", s.root() / "back");
                std::ifstream back(s.root() / "back" / "file one");
                std::string back_line;
                std::getline(back, back_line);
                BOOST_TEST(back_line == "payload");
                co_await w.expect_status("sudo sh -c 'echo console-marker-$((6*7)) > /dev/console'");
                auto line = co_await w.wait_for_console("console-marker-42", 60s);
                BOOST_TEST(has(line, "console-marker-42"), line);
            },
            10min);

        // A deadline names what the body was waiting for, and shows the VMs.
        auto msg = caught(
            [&] {
                set.run(
                    [](lt::vm_set& s) -> asio::awaitable<void> {
                        co_await s["b"].wait_for_console("never printed", 1h);
                    },
                    3s, "the waiting body");
            },
            errc::timeout);
        BOOST_TEST(has(msg, "the waiting body did not finish within 3000 ms"), msg);
        BOOST_TEST(has(msg, "console text \"never printed\" on vm 'b' (for "), msg);
        BOOST_TEST(has(msg, "---- vm 'b': serial console"), msg);
        BOOST_TEST(has(msg, "---- vm 'c': QEMU stderr"), msg);

        // Any exception comes back with the report; the VMs stay up.
        msg = caught(
            [&] {
                set.run([](lt::vm_set& s) -> asio::awaitable<void> {
                    co_await s["a"].expect_status("true");
                    throw std::runtime_error("deliberate failure");
                });
            },
            lt::kit_errc::check_failed);
        BOOST_TEST(has(msg, "deliberate failure"), msg);
        BOOST_TEST(has(msg, "localvm-tiny"), msg); // the guest's console lines
        set.run([](lt::vm_set& s) -> asio::awaitable<void> {
            co_await s["c"].expect_status("true");
        });
    }
    // Teardown stopped and deleted everything.
    BOOST_TEST(!fs::exists(root));
    BOOST_TEST(!process_mentions(root.string()), "a QEMU under " << root << " survived");
    BOOST_TEST(pids.size() == 3u);
    for (auto pid : pids) {
        std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
        std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        BOOST_TEST(cmd.find(root.string()) == std::string::npos, "QEMU pid " << pid << " survived");
    }
}

BOOST_AUTO_TEST_CASE(a_failed_check_shows_the_console_tail_and_teardown_still_runs) {
    const char* program = std::getenv("LOCALVM_KIT_FAILING");
    BOOST_REQUIRE_MESSAGE(program, "LOCALVM_KIT_FAILING is not set (run through meson test)");
    char tmpl[] = "/tmp/localvm-kit-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(tmpl));
    fs::path tmp = tmpl;
    localvm::process::result r;
    lt::run_coroutine(
        [&]() -> asio::awaitable<void> {
            localvm::process::options o;
            o.argv = {program};
            o.env_overrides = {"TMPDIR=" + tmp.string()};
            r = co_await localvm::process::run(o);
        },
        10min, "kit_failing");
    auto out = r.out + r.err;
    BOOST_TEST(r.exit_code != 0, out);
    BOOST_TEST(has(out, "deliberately-wrong"), out);
    BOOST_TEST(has(out, "localvm: what the test VMs said:"), out);
    BOOST_TEST(has(out, "---- vm 'lonely': serial console"), out);
    BOOST_TEST(has(out, "localvm-tiny"), out);
    BOOST_TEST(!has(out, "teardown"), out);
    BOOST_TEST(!process_mentions(tmp.string()), "kit_failing left a QEMU running");
    BOOST_TEST(fs::is_empty(tmp), "kit_failing left files in " << tmp);
    fs::remove_all(tmp);
}
