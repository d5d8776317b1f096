#include "image.hpp"

#include <boost/json.hpp>

namespace localvm::qemu::detail {
namespace json = boost::json;

namespace {

std::string string_at(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

} // namespace

std::optional<image_info> parse_image_info(std::string_view text) {
    json::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object())
        return std::nullopt;
    const auto& o = v.get_object();
    image_info info;
    info.format = string_at(o, "format");
    if (info.format.empty())
        return std::nullopt;
    // qemu-img reports a backing file that it cannot open too; either name counts.
    for (auto key : {"backing-filename", "full-backing-filename"}) {
        auto name = string_at(o, key);
        if (!name.empty()) {
            info.references.push_back("backing file " + name);
            break;
        }
    }
    const auto* specific = o.if_contains("format-specific");
    const json::object* data = nullptr;
    if (specific && specific->is_object())
        if (const auto* d = specific->get_object().if_contains("data"); d && d->is_object())
            data = &d->get_object();
    if (data) {
        if (auto file = string_at(*data, "data-file"); !file.empty())
            info.references.push_back("data file " + file);
        // A vmdk descriptor names its extents; a sparse one is its own.
        const auto* extents = data->if_contains("extents");
        if (extents && extents->is_array()) {
            auto self = string_at(o, "filename");
            for (const auto& e : extents->get_array()) {
                auto file = e.is_object() ? string_at(e.get_object(), "filename") : std::string();
                if (!file.empty() && file != self)
                    info.references.push_back("extent " + file);
            }
        }
    }
    return info;
}

std::string refuse_base(const image_info& info, const std::filesystem::path& image,
                        bool allow_references) {
    if (allow_references || info.references.empty())
        return {};
    std::string list;
    for (const auto& r : info.references)
        list += (list.empty() ? "" : ", ") + r;
    return "base image " + image.string() + " (" + info.format +
           ") makes QEMU open other files, which the guest could then read: " + list +
           "; use a self-contained image (qemu-img convert), or set "
           "qemu::options::allow_base_backing_chain for an image you made";
}

std::vector<std::string> limited_info_argv(const std::filesystem::path& qemu_img,
                                           const std::filesystem::path& image) {
    return {"prlimit", "--as=1073741824", "--cpu=30",    "--", qemu_img.string(),
            "info",    "--output=json",   image.string()};
}

} // namespace localvm::qemu::detail
