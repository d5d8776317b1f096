// The test kit's own error codes, in a category of their own: the kit's
// checks are not something the library reports, so they stay out of
// `localvm::errc`.
#pragma once

#include <boost/system/error_code.hpp>

#include <iosfwd>
#include <type_traits>

namespace localvm::testing {

/// What the test kit reports, in the `localvm.testing` error category. It
/// throws them as `localvm::error` (compare: `e.code() ==
/// kit_errc::check_failed`). Codes are stable: new ones are only appended.
enum class kit_errc {
    check_failed = 1, ///< A test expectation did not hold (the `vm::expect_*` helpers),
                      ///< or a test body threw something that is not a `localvm::error`.
};

/// The `localvm.testing` error category; a process-wide singleton.
const boost::system::error_category& kit_category() noexcept;

/// Makes an error_code in the `localvm.testing` category; found by ADL.
boost::system::error_code make_error_code(kit_errc e) noexcept;

/// Writes the code's message, "check failed" (for test output).
std::ostream& operator<<(std::ostream& os, kit_errc e);

} // namespace localvm::testing

namespace boost::system {
template <> struct is_error_code_enum<localvm::testing::kit_errc> : std::true_type {};
} // namespace boost::system
