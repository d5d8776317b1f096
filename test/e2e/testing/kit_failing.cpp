// A VM test that fails a non-fatal check on purpose: test_kit.cpp runs it
// and checks that the failure shows what the VM's console and QEMU said.
#define BOOST_TEST_MODULE kit_failing
#include <localvm/testing/boost.hpp>

#include <boost/asio/use_awaitable.hpp>

namespace lt = localvm::testing;

BOOST_FIXTURE_TEST_CASE(fails_a_check_inside_a_vm_test, lt::vm_fixture) {
    lt::vm_spec s;
    s.name = "lonely";
    s.start.cpus = 1;
    s.start.memory = "512M";
    s.start.boot = lt::guest_image::load("tiny").boot();
    vms.add(s);
    vms.run([](lt::vm_set& set) -> boost::asio::awaitable<void> {
        auto out = co_await set["lonely"].output("echo deliberately-wrong");
        BOOST_TEST(out == "what the test expected\n");
    });
}
