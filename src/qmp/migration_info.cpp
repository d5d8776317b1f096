// The pure half of qmp/migration.hpp: reading QEMU's migration status.
#include <localvm/error.hpp>
#include <localvm/qmp/migration.hpp>

namespace localvm::qmp {

std::optional<migration_info> parse_migration_info(const boost::json::value& v,
                                                   boost::system::error_code& ec) {
    ec = {};
    const auto* o = v.if_object();
    const auto* status = o ? o->if_contains("status") : nullptr;
    if (!status || !status->is_string()) {
        ec = make_error_code(errc::protocol_error);
        return std::nullopt;
    }
    auto number = [](const boost::json::value* x) -> std::uint64_t {
        if (x && x->is_uint64())
            return x->get_uint64();
        if (x && x->is_int64() && x->get_int64() >= 0)
            return static_cast<std::uint64_t>(x->get_int64());
        return 0;
    };
    migration_info out;
    out.status = status->get_string();
    if (const auto* e = o->if_contains("error-desc"); e && e->is_string())
        out.error = e->get_string();
    out.total_time_ms = number(o->if_contains("total-time"));
    if (const auto* ram = o->if_contains("ram"); ram && ram->is_object())
        out.ram_transferred = number(ram->get_object().if_contains("transferred"));
    return out;
}

bool migration_ended(std::string_view status) noexcept {
    return status == "completed" || status == "failed" || status == "cancelled";
}

} // namespace localvm::qmp
