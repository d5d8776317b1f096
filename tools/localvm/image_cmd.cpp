#include "image_cmd.hpp"

#include <localvm/error.hpp>
#include <localvm/image/cache.hpp>
#include <localvm/image/fetch.hpp>

#include <cstdio>

#include "image_view.hpp"

namespace localvm::cli {
namespace {

void line(std::string_view text) {
    std::fputs((terminal_safe(text) + "\n").c_str(), stderr);
    std::fflush(stderr);
}

boost::asio::awaitable<std::filesystem::path> pull(const invocation& i, progress& p) {
    image::fetch_options o;
    o.cache_dir = i.cache_dir;
    o.ca_file = i.ca_file;
    const bool quiet = i.level == verbosity::quiet;
    const std::string what = i.image;
    unsigned last_quarter = 0;
    bool said_waiting = false;
    o.progress = [&](const image::fetch_progress& f) {
        if (quiet)
            return;
        if (p.tty()) {
            // The status line puts the elapsed time in front: leave room.
            auto bar = render_fetch_progress(f, std::min<std::size_t>(terminal_width(), 100) - 30);
            p.activity(f.done ? "fetched" : f.waiting ? bar : "fetching " + bar);
            return;
        }
        if (f.waiting && !said_waiting) {
            said_waiting = true;
            line("waiting for another process fetching " + what);
        }
        if (f.total && *f.total > 0 && !f.done) {
            auto quarter = static_cast<unsigned>(f.bytes * 4 / *f.total);
            if (quarter > last_quarter && quarter < 4) {
                last_quarter = quarter;
                line("fetching " + what + ": " + render_fetch_progress(f, 0));
            }
        }
    };
    if (!quiet && !p.tty())
        line("fetching " + what);
    auto path = co_await image::fetch(i.image, i.image_digest, o);
    if (p.tty() && !quiet)
        p.activity("fetched " + what);
    if (!quiet && !p.tty())
        line("image " + what +
             (i.image_digest ? " (" + i.image_digest->text() + " verified)" : "") + ": " +
             path.string());
    co_return path;
}

std::filesystem::path cache_dir_of(const invocation& i) {
    return i.cache_dir.empty() ? image::default_cache_dir() : i.cache_dir;
}

} // namespace

boost::asio::awaitable<int> cmd_image(const invocation& i, progress& p) {
    if (i.image_action == "pull") {
        auto path = co_await pull(i, p);
        p.finish();
        if (i.level != verbosity::quiet && p.tty())
            line("image " + i.image +
                 (i.image_digest ? " (" + i.image_digest->text() + " verified)" : ""));
        std::fputs((path.string() + "\n").c_str(), stdout);
        co_return 0;
    }
    const auto dir = cache_dir_of(i);
    if (i.image_action == "list") {
        std::fputs(render_image_list(image::list_cached(dir)).c_str(), stdout);
        co_return 0;
    }
    // rm: a key as `list` shows it (in full), else a URL or path.
    std::string key = i.image;
    if (!image::is_cache_key(key)) {
        std::error_code ec;
        auto cwd = std::filesystem::current_path(ec);
        std::string problem;
        auto u = image::parse_url(i.image, cwd, problem);
        if (!u)
            throw_error(errc::invalid_argument, problem);
        key = image::cache_key(*u);
    }
    if (!image::remove_cached(dir, key))
        throw_error(errc::not_found, i.image + " is not in the image cache " + dir.string());
    if (i.level != verbosity::quiet)
        line("removed " + i.image);
    co_return 0;
}

boost::asio::awaitable<std::filesystem::path> base_image(const invocation& i, progress& p) {
    if (i.image.empty())
        co_return i.base;
    co_return co_await pull(i, p);
}

} // namespace localvm::cli
