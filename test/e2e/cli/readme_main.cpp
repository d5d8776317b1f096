// Runs the README's API example (extracted from README.md at build time)
// on the tiny guest: TCG, restricted networking, a temporary home.
#define BOOST_TEST_MODULE readme_example
#include <localvm/process/child.hpp>
#include <localvm/testing/run.hpp>

#include <boost/test/unit_test.hpp>

#include "../qemu/guest.hpp"
#include "readme_example.hpp"

namespace asio = boost::asio;

BOOST_AUTO_TEST_CASE(readme_example_runs) {
    auto g = lve2e::load_guest("tiny");
    lve2e::home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto base = h.root / "base.qcow2";
            localvm::process::options mk;
            mk.argv = {"qemu-img", "create", "-q", "-f", "qcow2", base.string(), "64M"};
            co_await localvm::process::run_checked(std::move(mk));
            auto status = co_await example(h.options("readme"), base, lve2e::tiny_start(g, h));
            BOOST_TEST(status == 0);
            BOOST_TEST(!std::filesystem::exists(h.root / "data" / "readme"));
        },
        std::chrono::minutes(20), "the README example on the tiny guest");
}
