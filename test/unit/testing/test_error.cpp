// The test kit's error codes live in their own category, apart from the
// library's `localvm::errc`.
#define BOOST_TEST_MODULE testing_error
#include <localvm/error.hpp>
#include <localvm/testing/error.hpp>

#include <boost/test/unit_test.hpp>

#include <sstream>
#include <string>

using localvm::testing::kit_errc;

BOOST_AUTO_TEST_CASE(check_failed_is_a_kit_code_thrown_as_localvm_error) {
    auto ec = make_error_code(kit_errc::check_failed);
    BOOST_TEST(std::string(ec.category().name()) == "localvm.testing");
    BOOST_TEST(ec.message() == "check failed");
    BOOST_TEST(ec != localvm::make_error_code(static_cast<localvm::errc>(ec.value())));
    BOOST_TEST(make_error_code(static_cast<kit_errc>(99)).message().find("99") !=
               std::string::npos);
    std::ostringstream os;
    os << kit_errc::check_failed;
    BOOST_TEST(os.str() == "check failed");
    try {
        localvm::throw_error(kit_errc::check_failed, "`true` on vm 'a' exited with 1");
        BOOST_FAIL("no throw");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == kit_errc::check_failed);
        BOOST_TEST(e.diagnostic() == "`true` on vm 'a' exited with 1");
    }
}
