// An example test suite with real VMs, written only against localvm's
// public headers: copy it to start your own. Build it with Boost.Test
// (BOOST_TEST_DYN_LINK) and localvm; it needs the tiny test guest
// (test/guests/build tiny) or any guest image laid out like it.
#define BOOST_TEST_MODULE example_vm_tests
#include <localvm/testing/boost.hpp>

#include <boost/asio/use_awaitable.hpp>

#include <fstream>

namespace lt = localvm::testing;
using boost::asio::awaitable;
using namespace std::chrono_literals;

namespace {

// One small direct-boot VM: TCG, restricted networking, SSH forwarded to a
// free host port, the set's own key authorised (vm_spec's defaults).
lt::vm_spec small_vm(const std::string& name) {
    lt::vm_spec s;
    s.name = name;
    s.start.cpus = 1;
    s.start.memory = "512M";
    s.start.boot = lt::guest_image::load("tiny").boot();
    return s;
}

// The VMs every test of the `shared` suite uses: booted once, on the first
// run, and stopped and deleted when the suite ends.
struct two_servers {
    static void setup(lt::vm_set& vms) {
        auto web = small_vm("server-1");
        web.start.ports = {{"127.0.0.1", 0, 22}, {"127.0.0.1", 0, 8080}};
        vms.add(web);
        vms.add(small_vm("server-2"));
    }
};
using shared_vms = lt::suite_vms<two_servers>;

} // namespace

// A VM of its own for one test case; gone when the test ends, pass or fail.
BOOST_FIXTURE_TEST_CASE(a_vm_per_test, lt::vm_fixture) {
    auto vm = small_vm("solo");
    vm.start.user_data = "#!/bin/sh\necho configured-by-user-data > /run/marker\n";
    vms.add(vm);
    vms.run([](lt::vm_set& s) -> awaitable<void> {
        auto& solo = s["solo"];
        co_await solo.expect_output("cat /run/marker", "configured-by-user-data\n");
        co_await solo.expect_status("test -d /nonexistent", 1);

        std::ofstream(s.root() / "greeting.txt") << "hello, guest\n";
        co_await solo.copy_in(s.root() / "greeting.txt", "/tmp/greeting.txt");
        auto text = co_await solo.output("cat /tmp/greeting.txt");
        BOOST_TEST(text == "hello, guest\n");
    }, 10min);
}

BOOST_AUTO_TEST_SUITE(shared, *boost::unit_test::fixture<shared_vms>())

BOOST_AUTO_TEST_CASE(both_servers_answer) {
    shared_vms::get().run([](lt::vm_set& s) -> awaitable<void> {
        for (const auto& name : s.names())
            co_await s[name].expect_output("hostname", name + "\n");
    }, 10min);
}

BOOST_AUTO_TEST_CASE(a_service_behind_a_port_forward) {
    shared_vms::get().run([](lt::vm_set& s) -> awaitable<void> {
        auto& web = s["server-1"];
        co_await web.expect_status("echo served-page > /tmp/index.html && "
                                   "busybox httpd -p 8080 -h /tmp </dev/null >/dev/null 2>&1");
        auto host_port = co_await web.wait_for_port(8080, 30s); // reachable from the host
        BOOST_TEST(host_port != 0);
        co_await web.expect_output("busybox wget -qO- http://127.0.0.1:8080/index.html",
                                   "served-page\n");
        co_await web.expect_status("sudo sh -c 'echo server is up > /dev/console'");
        co_await web.wait_for_console("server is up", 30s);
    }, 5min);
}

BOOST_AUTO_TEST_SUITE_END()
