#include <localvm/error.hpp>
#include <localvm/image/cache.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lock.hpp"
#include "sys/errno.hpp"
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace localvm::image {
namespace {

std::optional<std::string> read_small(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    auto text = s.str();
    if (text.size() > 64 * 1024)
        return std::nullopt;
    return text;
}

std::filesystem::path env_path(const char* name) {
    const char* v = std::getenv(name);
    return v && *v ? std::filesystem::path(v) : std::filesystem::path();
}

} // namespace

std::string cache_key(const url& u) {
    hasher h(digest_algorithm::sha256);
    h.update(u.text);
    return h.finish().hex;
}

bool is_cache_key(std::string_view s) noexcept {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

entry_paths paths_of(const std::filesystem::path& cache_dir, std::string_view key) {
    entry_paths p;
    p.dir = cache_dir / "by-url-sha256" / std::string(key);
    p.url = p.dir / "url";
    p.digest = p.dir / "digest";
    p.data = p.dir / "data";
    p.partial = p.dir / "data.partial";
    p.unpack = p.dir / "data.unpack";
    p.lock = p.dir / "lock";
    return p;
}

std::filesystem::path default_cache_dir() {
    if (auto x = env_path("XDG_CACHE_HOME"); !x.empty())
        return x / "localvm" / "images";
    if (auto h = env_path("HOME"); !h.empty())
        return h / ".cache" / "localvm" / "images";
    return std::filesystem::path("/tmp") / ("localvm-cache-" + std::to_string(::getuid())) /
           "images";
}

std::string format_digests(const std::vector<digest>& digests) {
    std::string out;
    for (const auto& d : digests)
        out += d.text() + "\n";
    return out;
}

std::vector<digest> parse_digests(std::string_view text) {
    std::vector<digest> out;
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        std::string problem;
        if (auto d = parse_digest(line, problem))
            out.push_back(*d);
    }
    return out;
}

bool serves(const std::vector<digest>& recorded, const std::optional<digest>& expected) {
    if (!expected)
        return true;
    return std::find(recorded.begin(), recorded.end(), *expected) != recorded.end();
}

std::optional<cached_image> find_cached(const std::filesystem::path& cache_dir,
                                        std::string_view key) {
    if (!is_cache_key(key))
        return std::nullopt;
    auto p = paths_of(cache_dir, key);
    std::error_code ec;
    auto st = std::filesystem::symlink_status(p.data, ec);
    if (ec || !std::filesystem::is_regular_file(st))
        return std::nullopt;
    auto digests = read_small(p.digest);
    if (!digests)
        return std::nullopt;
    cached_image c;
    c.key = std::string(key);
    c.url = read_small(p.url).value_or(""); // written as one line by fetch
    while (!c.url.empty() && (c.url.back() == '\n' || c.url.back() == '\r'))
        c.url.pop_back();
    c.data = p.data;
    c.size = std::filesystem::file_size(p.data, ec);
    c.digests = parse_digests(*digests);
    if (ec || c.digests.empty())
        return std::nullopt;
    return c;
}

std::vector<cached_image> list_cached(const std::filesystem::path& cache_dir) {
    std::vector<cached_image> out;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(cache_dir / "by-url-sha256", ec), end;
         !ec && it != end; it.increment(ec)) {
        if (auto c = find_cached(cache_dir, it->path().filename().string()))
            out.push_back(std::move(*c));
    }
    std::sort(out.begin(), out.end(),
              [](const cached_image& a, const cached_image& b) { return a.url < b.url; });
    return out;
}

bool remove_cached(const std::filesystem::path& cache_dir, std::string_view key) {
    if (!is_cache_key(key))
        throw_error(errc::invalid_argument, "\"" + std::string(key) + "\" is not a cache key");
    auto p = paths_of(cache_dir, key);
    std::error_code ec;
    if (!std::filesystem::is_directory(std::filesystem::symlink_status(p.dir, ec)))
        return false;
    auto fd = detail::open_lock_file(p.lock);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            throw_error(errc::busy,
                        "image " + std::string(key) + " is being downloaded by another process");
        sys::throw_errno(errc::io_error, "cannot lock " + p.lock.string(), errno);
    }
    // Remove the lock file last: a fetcher that opened it before us finds it
    // deleted once it gets the lock, and starts over on a new one.
    for (const auto& f : {p.data, p.digest, p.partial, p.unpack, p.url, p.lock})
        if (::unlink(f.c_str()) != 0 && errno != ENOENT)
            sys::throw_errno(errc::io_error, "cannot remove " + f.string(), errno);
    std::filesystem::remove(p.dir, ec); // fails only when something unknown is left: keep it
    return true;
}

} // namespace localvm::image
