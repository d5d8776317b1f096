#include <localvm/testing/error.hpp>

#include <ostream>
#include <string>

namespace localvm::testing {
namespace {

class kit_category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "localvm.testing"; }

    std::string message(int ev) const override {
        switch (static_cast<kit_errc>(ev)) {
        case kit_errc::check_failed:
            return "check failed";
        }
        return "unknown localvm.testing error " + std::to_string(ev);
    }
};

} // namespace

const boost::system::error_category& kit_category() noexcept {
    static const kit_category_impl instance;
    return instance;
}

boost::system::error_code make_error_code(kit_errc e) noexcept {
    return {static_cast<int>(e), kit_category()};
}

std::ostream& operator<<(std::ostream& os, kit_errc e) {
    return os << make_error_code(e).message();
}

} // namespace localvm::testing
