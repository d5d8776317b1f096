#include "base_check.hpp"

#include <localvm/error.hpp>
#include <localvm/process/child.hpp>

#include "image.hpp"

namespace localvm::qemu::detail {

std::optional<std::uint64_t> requested_disk_bytes(const options& o) {
    if (o.disk_size.empty())
        return std::nullopt;
    boost::system::error_code ec;
    auto bytes = parse_disk_size(o.disk_size, ec);
    if (!bytes)
        throw_error(errc::invalid_argument, "disk_size: \"" + o.disk_size +
                                                "\" is not a size like 20G, 512M or a number of bytes");
    return bytes;
}

boost::asio::awaitable<std::string> check_base(const options& o, const std::filesystem::path& base) {
    process::options info;
    info.argv = limited_info_argv(o.qemu_img, base);
    info.timeout = std::chrono::seconds(60);
    auto r = co_await process::run_checked(info);
    auto parsed = parse_image_info(r.out);
    if (!parsed)
        throw_error(errc::process_failed, "qemu-img info " + base.string() + " gave no image format");
    if (auto why = refuse_base(*parsed, base, o.allow_base_backing_chain); !why.empty())
        throw_error(errc::unsupported, why);
    co_return parsed->format;
}

} // namespace localvm::qemu::detail
