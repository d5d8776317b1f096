#include <localvm/atomic_file.hpp>
#include <localvm/error.hpp>
#include <localvm/image/cache.hpp>
#include <localvm/image/fetch.hpp>
#include <localvm/image/url.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "http_get.hpp"
#include "lock.hpp"
#include "sink.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include "sys/secure_dir.hpp"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm::image {
namespace asio = boost::asio;

namespace {

using clock = std::chrono::steady_clock;

bool offline_from_env() {
    const char* v = std::getenv("LOCALVM_OFFLINE");
    return v && *v && std::string_view(v) != "0";
}

// Rate-limited progress reports.
class tracker {
public:
    explicit tracker(progress_sink sink)
        : sink_(std::move(sink)) {}

    void waiting() {
        if (!sink_)
            return;
        fetch_progress p;
        p.waiting = true;
        sink_(p);
    }
    void start(std::uint64_t offset, std::optional<std::uint64_t> total) {
        bytes_ = offset;
        total_ = total;
        if (!started_) {
            started_ = true;
            t0_ = clock::now();
            report(false);
        }
    }
    void add(std::size_t n) {
        bytes_ += n;
        received_ += n;
        // The first bytes are news (the transfer flows); then every 100 ms.
        if (sink_ && (!flowing_ || clock::now() - last_ >= std::chrono::milliseconds(100)))
            report(false);
        flowing_ = true;
    }
    void done(std::uint64_t size) {
        bytes_ = size;
        if (!total_)
            total_ = size;
        report(true);
    }

private:
    void report(bool done) {
        if (!sink_)
            return;
        last_ = clock::now();
        fetch_progress p;
        p.bytes = bytes_;
        p.total = total_;
        std::chrono::duration<double> secs = last_ - t0_;
        p.bytes_per_second = started_ && secs.count() > 0 ? received_ / secs.count() : 0;
        p.done = done;
        sink_(p);
    }

    progress_sink sink_;
    bool started_ = false;
    bool flowing_ = false;
    clock::time_point t0_{}, last_{};
    std::uint64_t bytes_ = 0, received_ = 0;
    std::optional<std::uint64_t> total_;
};

bool cancelled(asio::cancellation_state cs) {
    return cs.cancelled() != asio::cancellation_type::none;
}

// A network failure after some bytes arrived: worth another connection.
bool worth_retrying(const boost::system::system_error& e) {
    const auto& ec = e.code();
    if (ec == asio::error::operation_aborted)
        return false;
    return ec.category() != category() || ec == errc::timeout;
}

asio::awaitable<void> download(const url& u, const fetch_options& o, detail::download_sink& sink,
                               tracker& progress) {
    detail::http_settings settings;
    settings.ca_file = o.ca_file;
    settings.max_redirects = o.max_redirects;
    settings.connect_timeout = o.connect_timeout;
    settings.idle_timeout = o.idle_timeout;
    for (unsigned attempt = 1;; ++attempt) {
        bool progressed = false;
        try {
            co_await detail::http_get(
                u, sink.partial_size(), settings,
                [&](std::uint64_t offset, std::optional<std::uint64_t> total) {
                    sink.start_at(offset);
                    progress.start(offset, total);
                },
                [&](std::string_view bytes) {
                    progressed = true;
                    sink.write(bytes);
                    progress.add(bytes.size());
                });
            co_return;
        } catch (const boost::system::system_error& e) {
            if (!progressed || attempt >= o.max_attempts || !worth_retrying(e))
                throw;
        }
        if (cancelled(co_await asio::this_coro::cancellation_state))
            throw boost::system::system_error(asio::error::operation_aborted);
    }
}

asio::awaitable<void> copy_local(const url& u, detail::download_sink& sink, tracker& progress) {
    sys::unique_fd fd(::open(u.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd && errno == ENOENT)
        throw_error(errc::not_found, "image file " + u.path.string() + " does not exist");
    if (!fd)
        sys::throw_errno(errc::io_error, "cannot open " + u.path.string(), errno);
    struct ::stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        throw_error(errc::invalid_argument, u.path.string() + " is not a regular file");
    sink.start_at(0);
    progress.start(0, static_cast<std::uint64_t>(st.st_size));
    auto ex = co_await asio::this_coro::executor;
    std::vector<char> buf(1 << 20);
    for (;;) {
        auto n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            sys::throw_errno(errc::io_error, "cannot read " + u.path.string(), errno);
        if (n == 0)
            break;
        sink.write({buf.data(), static_cast<std::size_t>(n)});
        progress.add(static_cast<std::size_t>(n));
        // Let the rest of the io_context run (and a cancellation land).
        co_await asio::post(ex, asio::use_awaitable);
    }
}

std::string describe(const std::vector<digest>& ds) {
    std::string out;
    for (const auto& d : ds)
        out += (out.empty() ? "" : ", ") + d.text();
    return out.empty() ? "nothing" : out;
}

} // namespace

asio::awaitable<std::filesystem::path> fetch(std::string_view location,
                                             std::optional<digest> expected, fetch_options o) {
    std::error_code cwd_ec;
    auto cwd = std::filesystem::current_path(cwd_ec);
    std::string problem;
    auto u = parse_url(location, cwd_ec ? std::filesystem::path() : cwd, problem);
    if (!u)
        throw_error(errc::invalid_argument,
                    "image location \"" + std::string(location) + "\": " + problem);
    const bool offline = o.offline.value_or(offline_from_env());

    auto cache_dir = o.cache_dir.empty() ? default_cache_dir() : o.cache_dir;
    // Our own top level: CACHE_HOME/localvm for the default, else the given directory.
    auto top = o.cache_dir.empty() ? cache_dir.parent_path() : cache_dir;
    const auto key = cache_key(*u);
    const auto paths = paths_of(cache_dir, key);
    auto offline_miss = [&] {
        throw_error(errc::not_found, "offline (LOCALVM_OFFLINE is set): " + u->text +
                                         " is not in the image cache " + cache_dir.string());
    };
    // Offline, and no entry at all (no copy, nobody fetching one): fail
    // before making its directory and lock, so that a miss leaves nothing.
    std::error_code entry_ec;
    if (offline && u->scheme != scheme::file &&
        !std::filesystem::exists(std::filesystem::symlink_status(paths.dir, entry_ec)))
        offline_miss();
    sys::ensure_private_dir(top, paths.dir, "image cache directory");

    tracker progress(o.progress);
    auto lock = co_await detail::entry_lock::acquire(paths.lock, clock::now() + o.lock_timeout,
                                                     u->text, [&] { progress.waiting(); });

    auto cached = find_cached(cache_dir, key);
    if (cached && serves(cached->digests, expected)) {
        progress.done(cached->size);
        co_return cached->data;
    }
    if (offline && u->scheme != scheme::file) {
        if (cached)
            throw_error(errc::not_found, "offline (LOCALVM_OFFLINE is set): the cached copy of " +
                                             u->text + " was verified as " +
                                             describe(cached->digests) + ", not " +
                                             expected->text());
        offline_miss();
    }
    write_file_atomic(paths.url, u->text + "\n", std::filesystem::perms(0600), false);

    const auto algorithm = expected ? expected->algorithm : digest_algorithm::sha256;
    detail::download_sink sink(paths, u->compression, algorithm);
    if (u->scheme == scheme::file)
        co_await copy_local(*u, sink, progress);
    else
        co_await download(*u, o, sink, progress);

    auto got = sink.finish();
    auto discard = [&] {
        ::unlink(paths.partial.c_str());
        ::unlink(paths.unpack.c_str());
    };
    if (expected && got != *expected) {
        discard();
        throw_error(errc::digest_mismatch, u->text + ": expected " + expected->text() + ", got " +
                                               got.text() + "; the download was deleted");
    }
    try {
        sink.complete_unpack();
    } catch (...) {
        discard();
        throw;
    }
    auto size = sink.position();
    auto source = sink.commit_source();
    // A copy cached before (another digest) stays until this one is
    // verified. Then: its digest goes, the data is replaced, the new digest
    // comes; a crash in between leaves data without a digest (a miss), never
    // a digest describing other data.
    if (::unlink(paths.digest.c_str()) != 0 && errno != ENOENT)
        sys::throw_errno(errc::io_error, "cannot remove " + paths.digest.string(), errno);
    if (::rename(source.c_str(), paths.data.c_str()) != 0)
        sys::throw_errno(errc::io_error,
                         "cannot rename " + source.string() + " to " + paths.data.string(), errno);
    sys::sync_directory(paths.dir);
    write_file_atomic(paths.digest, format_digests({got}), std::filesystem::perms(0600));
    ::unlink(paths.partial.c_str()); // the compressed download, once unpacked
    sys::sync_directory(paths.dir);
    std::error_code ec;
    progress.done(u->compression == compression::none ? size
                                                      : std::filesystem::file_size(paths.data, ec));
    co_return paths.data;
}

} // namespace localvm::image
