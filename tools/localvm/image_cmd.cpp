#include "image_cmd.hpp"

#include <localvm/error.hpp>
#include <localvm/image/cache.hpp>
#include <localvm/image/fetch.hpp>
#include <localvm/process/child.hpp>

#include <boost/json/parse.hpp>

#include <cstdio>
#include <system_error>

#include "image_view.hpp"
#include <sys/stat.h>

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

namespace {

// The overlay's backing format, as qemu-img reads its header.
boost::asio::awaitable<std::string> backing_format(const qemu::manager& vm) {
    process::options o;
    o.argv = {vm.config().qemu_img.string(), "info", "-U", "--output=json",
              vm.files().disk.string()};
    auto r = co_await process::run_checked(std::move(o));
    auto v = boost::json::parse(r.out);
    const auto* f = v.is_object() ? v.as_object().if_contains("backing-filename-format") : nullptr;
    if (!f || !f->is_string())
        throw_error(errc::process_failed,
                    "qemu-img info " + vm.files().disk.string() + " shows no backing format");
    co_return std::string(f->as_string());
}

// See create_vm: links (or copies) `cached` to DATA/base.img, checks it is
// the file the overlay was made on (`made_on`, its stat before create), and
// rebases the overlay onto it (unsafe mode: the content is the same).
boost::asio::awaitable<void> own_base(qemu::manager& vm, const std::filesystem::path& cached,
                                      const struct ::stat& made_on) {
    namespace fs = std::filesystem;
    const auto own = fs::absolute(vm.files().data / "base.img");
    std::error_code ec;
    fs::remove(own, ec); // the VM was just created: a file by that name is stale
    fs::create_hard_link(cached, own, ec);
    if (ec) { // another filesystem, or links refused: a copy of its own
        std::error_code copy_ec;
        fs::copy_file(cached, own, fs::copy_options::overwrite_existing, copy_ec);
        if (copy_ec)
            throw_error(errc::io_error, "cannot link or copy " + cached.string() + " to " +
                                            own.string() + ": " + copy_ec.message());
    }
    struct ::stat now {};
    if (::stat(own.c_str(), &now) != 0 || now.st_size != made_on.st_size ||
        (!ec && (now.st_ino != made_on.st_ino || now.st_dev != made_on.st_dev)))
        throw_error(errc::busy, "the cached image " + cached.string() +
                                    " was replaced while the VM was created on it; try again");
    const auto format = co_await backing_format(vm);
    process::options o;
    o.argv = {vm.config().qemu_img.string(), "rebase", "-u", "-F", format, "-b", own.string(),
              vm.files().disk.string()};
    co_await process::run_checked(std::move(o));
}

} // namespace

boost::asio::awaitable<void> create_vm(const invocation& i, qemu::manager& vm, progress& p) {
    auto base = co_await base_image(i, p);
    struct ::stat made_on {};
    if (!i.image.empty() && ::stat(base.c_str(), &made_on) != 0)
        throw_error(errc::not_found, "the cached image " + base.string() + " is gone");
    p.activity("creating the disk overlay");
    co_await vm.create(base);
    if (i.image.empty())
        co_return;
    std::exception_ptr failed;
    try {
        co_await own_base(vm, base, made_on);
    } catch (...) {
        failed = std::current_exception();
    }
    if (failed) {
        co_await vm.remove(); // nothing half-made
        std::rethrow_exception(failed);
    }
}

} // namespace localvm::cli
