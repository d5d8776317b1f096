#include "image_view.hpp"

#include <algorithm>
#include <cstdio>

namespace localvm::cli {

std::string human_bytes(std::uint64_t n) {
    if (n < 1024)
        return std::to_string(n) + " B";
    const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n) / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::string render_fetch_progress(const image::fetch_progress& p, std::size_t width) {
    if (p.waiting)
        return "waiting for another process fetching it";
    std::string rate = human_bytes(static_cast<std::uint64_t>(p.bytes_per_second)) + "/s";
    if (!p.total || *p.total == 0)
        return human_bytes(p.bytes) + " " + rate;
    auto total = *p.total;
    auto done = std::min(p.bytes, total);
    unsigned percent = static_cast<unsigned>(done * 100 / total);
    char pct[8];
    std::snprintf(pct, sizeof pct, "%3u%%", percent);
    std::string tail =
        std::string(" ") + pct + " " + human_bytes(done) + "/" + human_bytes(total) + " " + rate;
    if (width < tail.size() + 12)
        return tail.substr(1);
    std::size_t inner = std::min<std::size_t>(width - tail.size() - 2, 40);
    std::size_t filled = static_cast<std::size_t>(done * inner / total);
    std::string bar = "[" + std::string(filled, '=');
    if (filled < inner)
        bar += ">" + std::string(inner - filled - 1, ' ');
    return bar + "]" + tail;
}

std::string render_image_list(const std::vector<image::cached_image>& images) {
    if (images.empty())
        return "no cached images\n";
    std::string out = "KEY           SIZE        DIGEST               URL\n";
    for (const auto& i : images) {
        std::string line = i.key.substr(0, 12);
        line.resize(14, ' ');
        line += human_bytes(i.size);
        line.resize(26, ' ');
        std::string d = i.digests.empty() ? std::string("-")
                                          : std::string(image::name(i.digests[0].algorithm)) + ":" +
                                                i.digests[0].hex.substr(0, 12);
        line += d;
        line.resize(47, ' ');
        out += line + i.url + "\n";
    }
    return out;
}

} // namespace localvm::cli
