// fetch against a Beast server on 127.0.0.1 started here: cached once,
// digests checked, cuts resumed or restarted, chunked and close-delimited
// bodies, redirects bounded, offline, HTTPS with a CA made here, files, xz
// and gz, two processes at once, cancellation.
#define BOOST_TEST_MODULE image_fetch
#include <localvm/error.hpp>
#include <localvm/image/cache.hpp>
#include <localvm/image/fetch.hpp>
#include <localvm/process/child.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "server.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace localvm::image;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;
using localvm::errc;
using localvm::test::http_server;
using localvm::test::route;

namespace {

std::string bytes(std::size_t n, unsigned seed = 1) {
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(gen() & 0xff);
    return s;
}

digest digest_of(std::string_view data, digest_algorithm a = digest_algorithm::sha256) {
    hasher h(a);
    h.update(data);
    return h.finish();
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

struct scratch {
    fs::path dir;
    scratch() {
        char tmpl[] = "/tmp/localvm-image-fetch-XXXXXX";
        dir = ::mkdtemp(tmpl);
    }
    ~scratch() { fs::remove_all(dir); }
    fetch_options options() const {
        fetch_options o;
        o.cache_dir = dir / "cache";
        o.offline = false;
        return o;
    }
};

// Expects `op` to throw localvm::error with `code`; returns its what().
asio::awaitable<std::string> expect_error(asio::awaitable<fs::path> op, errc code) {
    try {
        co_await std::move(op);
    } catch (const localvm::error& e) {
        BOOST_TEST((e.code() == code), "got " << e.what());
        co_return std::string(e.what());
    }
    BOOST_FAIL("expected an error");
    co_return std::string();
}

void run(std::function<asio::awaitable<void>()> body) {
    localvm::testing::run_coroutine(std::move(body), 120s);
}

const std::size_t size = 3u << 20; // several reads, a cut mid-way
const std::size_t cut = 1000003;

} // namespace

BOOST_AUTO_TEST_CASE(good_digest_is_cached_and_never_fetched_again) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        auto data = bytes(size);
        server.add("/a.img", route{data});
        auto o = s.options();
        std::vector<fetch_progress> seen;
        o.progress = [&](const fetch_progress& p) {
            seen.push_back(p);
        };
        auto d = digest_of(data, digest_algorithm::sha512);
        auto path = co_await fetch(server.base() + "/a.img", d, o);
        BOOST_TEST(slurp(path) == data);
        BOOST_TEST(server.count("/a.img") == 1u);
        BOOST_REQUIRE(!seen.empty());
        BOOST_TEST(seen.back().done);
        BOOST_TEST(seen.back().bytes == size);
        BOOST_TEST(*seen.back().total == size);
        BOOST_TEST(seen.back().bytes_per_second > 0);
        auto key = path.parent_path().filename().string();
        BOOST_TEST(slurp(path.parent_path() / "digest") == d.text() + "\n");
        BOOST_TEST(slurp(path.parent_path() / "url") == server.base() + "/a.img\n");
        BOOST_TEST(!fs::exists(path.parent_path() / "data.partial"));
        BOOST_TEST(((fs::status(path.parent_path()).permissions() & fs::perms::all) ==
                    fs::perms::owner_all));

        // Again, by digest and without one: from the cache, no request.
        BOOST_TEST(co_await fetch(server.base() + "/a.img", d, o) == path);
        BOOST_TEST(co_await fetch(server.base() + "/a.img", std::nullopt, o) == path);
        BOOST_TEST(server.count("/a.img") == 1u);
        auto listed = list_cached(o.cache_dir);
        BOOST_REQUIRE(listed.size() == 1u);
        BOOST_TEST(listed[0].key == key);
        BOOST_TEST(listed[0].size == size);
    });
}

BOOST_AUTO_TEST_CASE(bad_digest_throws_naming_both_and_caches_nothing) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        auto data = bytes(size);
        server.add("/a.img", route{data});
        auto o = s.options();
        auto wrong = digest_of("something else");
        auto msg =
            co_await expect_error(fetch(server.base() + "/a.img", wrong, o), errc::digest_mismatch);
        BOOST_TEST(msg.find("expected " + wrong.text()) != std::string::npos, msg);
        BOOST_TEST(msg.find("got " + digest_of(data).text()) != std::string::npos, msg);
        BOOST_TEST(list_cached(o.cache_dir).empty());
        std::string problem;
        auto key = cache_key(*parse_url(server.base() + "/a.img", "/", problem));
        auto p = paths_of(o.cache_dir, key);
        BOOST_TEST(!fs::exists(p.data));
        BOOST_TEST(!fs::exists(p.partial));
        BOOST_TEST(!fs::exists(p.digest));
        // The right digest now fetches it (again: nothing was kept).
        co_await fetch(server.base() + "/a.img", digest_of(data), o);
        BOOST_TEST(server.count("/a.img") == 2u);
    });
}

BOOST_AUTO_TEST_CASE(a_cached_copy_with_another_digest_is_fetched_again) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        auto v1 = bytes(1000, 1), v2 = bytes(1000, 2);
        server.add("/latest.img", route{v1});
        auto o = s.options();
        co_await fetch(server.base() + "/latest.img", digest_of(v1), o);
        server.add("/latest.img", route{v2}); // the URL serves a new release
        auto path = co_await fetch(server.base() + "/latest.img", digest_of(v2), o);
        BOOST_TEST(slurp(path) == v2);
        BOOST_TEST(server.count("/latest.img") == 2u);
        BOOST_TEST(slurp(path.parent_path() / "digest") == digest_of(v2).text() + "\n");
    });
}

BOOST_AUTO_TEST_CASE(a_cut_body_is_resumed_with_a_range) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        auto data = bytes(size);
        server.add("/a.img", route{data, cut});
        auto path = co_await fetch(server.base() + "/a.img", digest_of(data), s.options());
        BOOST_TEST(slurp(path) == data);
        BOOST_REQUIRE(server.requests().size() == 2u);
        BOOST_TEST(server.requests()[0].range == "");
        BOOST_TEST(server.requests()[1].range == "bytes=" + std::to_string(cut) + "-");
    });
}

BOOST_AUTO_TEST_CASE(a_cut_body_is_restarted_when_range_is_ignored) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        auto data = bytes(size);
        route r{data, cut};
        r.ignore_range = true;
        server.add("/a.img", r);
        auto path = co_await fetch(server.base() + "/a.img", digest_of(data), s.options());
        BOOST_TEST(slurp(path) == data); // not the first part twice
        BOOST_REQUIRE(server.requests().size() == 2u);
        BOOST_TEST(server.requests()[1].range == "bytes=" + std::to_string(cut) + "-");
    });
}

BOOST_AUTO_TEST_CASE(chunked_and_close_delimited_bodies) {
    // Bodies without a Content-Length go through Beast's parser, not the
    // direct reads of a body of known length.
    scratch s;
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        auto data = bytes(size + 12345);
        route chunked{data}, closed{data};
        chunked.frame = route::framing::chunked;
        closed.frame = route::framing::close;
        server.add("/chunked.img", chunked);
        server.add("/closed.img", closed);
        auto d = digest_of(data, digest_algorithm::sha512);
        auto o = s.options();
        std::optional<std::uint64_t> total;
        o.progress = [&](const fetch_progress& p) {
            if (!p.done)
                total = p.total;
        };
        BOOST_TEST(slurp(co_await fetch(server.base() + "/chunked.img", d, o)) == data);
        BOOST_TEST(!total); // not known before the end
        BOOST_TEST(slurp(co_await fetch(server.base() + "/closed.img", d, o)) == data);
        BOOST_TEST(server.requests().size() == 2u);
    });
}

BOOST_AUTO_TEST_CASE(an_interrupted_fetch_is_resumed_by_the_next_one) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        auto data = bytes(size);
        server.add("/a.img", route{data, cut});
        auto o = s.options();
        o.max_attempts = 1; // give up after the cut
        std::string msg;
        try {
            co_await fetch(server.base() + "/a.img", digest_of(data), o);
        } catch (const localvm::error& e) {
            msg = e.what();
        }
        BOOST_TEST(msg.find("reading the body of " + server.base() + "/a.img") != std::string::npos,
                   msg);
        std::string problem;
        auto p =
            paths_of(o.cache_dir, cache_key(*parse_url(server.base() + "/a.img", "/", problem)));
        BOOST_TEST(fs::file_size(p.partial) == cut);
        BOOST_TEST(!fs::exists(p.data));
        auto path = co_await fetch(server.base() + "/a.img", digest_of(data), o);
        BOOST_TEST(slurp(path) == data);
        BOOST_REQUIRE(server.requests().size() == 2u);
        BOOST_TEST(server.requests()[1].range == "bytes=" + std::to_string(cut) + "-");
    });
}

BOOST_AUTO_TEST_CASE(offline_turns_a_miss_into_a_clear_error) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        auto data = bytes(1000);
        server.add("/a.img", route{data});
        auto o = s.options();
        o.offline.reset();
        ::setenv("LOCALVM_OFFLINE", "1", 1);
        auto msg = co_await expect_error(fetch(server.base() + "/a.img", digest_of(data), o),
                                         errc::not_found);
        BOOST_TEST(msg.find("offline (LOCALVM_OFFLINE is set)") != std::string::npos, msg);
        BOOST_TEST(msg.find("is not in the image cache") != std::string::npos, msg);
        BOOST_TEST(server.requests().empty());
        ::setenv("LOCALVM_OFFLINE", "0", 1);
        auto path = co_await fetch(server.base() + "/a.img", digest_of(data), o);
        ::setenv("LOCALVM_OFFLINE", "1", 1);
        BOOST_TEST(co_await fetch(server.base() + "/a.img", digest_of(data), o) == path);
        ::unsetenv("LOCALVM_OFFLINE");
        BOOST_TEST(server.requests().size() == 1u);
    });
}

BOOST_AUTO_TEST_CASE(redirects_are_followed_and_bounded) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        auto data = bytes(1000);
        server.add("/real.img", route{data});
        route hop;
        hop.redirect_to = "/real.img";
        server.add("/hop.img", hop);
        route loop;
        loop.redirect_to = "loop.img"; // relative, to itself
        server.add("/loop.img", loop);
        auto o = s.options();
        auto path = co_await fetch(server.base() + "/hop.img", digest_of(data), o);
        BOOST_TEST(slurp(path) == data);
        o.max_redirects = 4;
        auto msg = co_await expect_error(fetch(server.base() + "/loop.img", digest_of(data), o),
                                         errc::protocol_error);
        BOOST_TEST(msg.find("too many redirects (more than 4)") != std::string::npos, msg);
        BOOST_TEST(server.count("/loop.img") == 5u);
        auto nf = co_await expect_error(fetch(server.base() + "/missing.img", std::nullopt, o),
                                        errc::not_found);
        BOOST_TEST(nf.find("HTTP 404 Not Found from " + server.base() + "/missing.img") !=
                       std::string::npos,
                   nf);
    });
}

BOOST_AUTO_TEST_CASE(https_with_a_test_ca_and_refused_without_it) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        auto d = s.dir;
        auto openssl = [&](std::vector<std::string> args) -> asio::awaitable<void> {
            localvm::process::options p;
            p.argv = {"openssl"};
            p.argv.insert(p.argv.end(), args.begin(), args.end());
            co_await localvm::process::run_checked(p);
        };
        std::ofstream(d / "ext.cnf") << "subjectAltName=IP:127.0.0.1\n";
        // Built outside co_await: GCC 12 rejects braced string lists there.
        std::vector<std::vector<std::string>> steps = {
            {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", (d / "ca.key").string(), "-out", (d / "ca.pem").string(), "-days", "2",
             "-subj", "/CN=localvm test CA"},
            {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             (d / "server.key").string(), "-out", (d / "server.csr").string(), "-subj",
             "/CN=127.0.0.1"},
            {"x509", "-req", "-in", (d / "server.csr").string(), "-CA", (d / "ca.pem").string(),
             "-CAkey", (d / "ca.key").string(), "-CAcreateserial", "-out",
             (d / "server.pem").string(), "-days", "2", "-extfile", (d / "ext.cnf").string()},
        };
        for (const auto& step : steps)
            co_await openssl(step);
        http_server server(co_await asio::this_coro::executor, d / "server.pem", d / "server.key");
        auto data = bytes(size);
        server.add("/a.img", route{data, cut});
        auto o = s.options();
        // Without the CA: the handshake fails, naming the URL; nothing is cached.
        auto msg = co_await [&]() -> asio::awaitable<std::string> {
            try {
                co_await fetch(server.base() + "/a.img", digest_of(data), o);
            } catch (const localvm::error& e) {
                co_return std::string(e.what());
            }
            co_return std::string("no error");
        }();
        BOOST_TEST(msg.find("TLS handshake with 127.0.0.1:" + std::to_string(server.port())) !=
                       std::string::npos,
                   msg);
        BOOST_TEST(msg.find("certificate verify failed") != std::string::npos, msg);
        BOOST_TEST(list_cached(o.cache_dir).empty());
        BOOST_TEST(server.count("/a.img") == 0u);
        o.ca_file = d / "ca.pem";
        auto path = co_await fetch(server.base() + "/a.img", digest_of(data), o);
        BOOST_TEST(slurp(path) == data); // cut and resumed over TLS too
        BOOST_TEST(server.count("/a.img") == 2u);
        o.ca_file = d / "missing.pem";
        o.cache_dir = d / "cache2";
        auto bad = co_await expect_error(fetch(server.base() + "/a.img", digest_of(data), o),
                                         errc::invalid_argument);
        BOOST_TEST(bad.find("cannot load CA file") != std::string::npos, bad);
    });
}

BOOST_AUTO_TEST_CASE(files_and_plain_paths) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        auto data = bytes(size);
        std::ofstream(s.dir / "local.img", std::ios::binary) << data;
        auto o = s.options();
        auto a = co_await fetch((s.dir / "local.img").string(), digest_of(data), o);
        BOOST_TEST(slurp(a) == data);
        auto b = co_await fetch("file://" + (s.dir / "local.img").string(), digest_of(data), o);
        BOOST_TEST(a == b); // one entry
        BOOST_TEST(a != s.dir / "local.img");
        fs::remove(s.dir / "local.img");
        BOOST_TEST(slurp(co_await fetch((s.dir / "local.img").string(), std::nullopt, o)) == data);
        auto msg = co_await expect_error(fetch((s.dir / "nope.img").string(), std::nullopt, o),
                                         errc::not_found);
        BOOST_TEST(msg.find("does not exist") != std::string::npos, msg);
        auto bad =
            co_await expect_error(fetch("gopher://h/x", std::nullopt, o), errc::invalid_argument);
        BOOST_TEST(bad.find("unsupported URL scheme \"gopher\"") != std::string::npos, bad);
    });
}

BOOST_AUTO_TEST_CASE(xz_and_gz_are_decompressed_and_the_digest_is_of_the_compressed_bytes) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        auto data = bytes(size / 2) + std::string(size / 2, '\0'); // compresses somewhat
        std::ofstream(s.dir / "img", std::ios::binary) << data;
        for (const char* tool : {"xz", "gzip"}) {
            localvm::process::options p;
            p.argv = {tool, "-k", "-f", (s.dir / "img").string()};
            co_await localvm::process::run_checked(p);
        }
        http_server server(co_await asio::this_coro::executor);
        auto xz = slurp(s.dir / "img.xz"), gz = slurp(s.dir / "img.gz");
        BOOST_REQUIRE(xz.size() < data.size());
        server.add("/img.xz", route{xz, xz.size() / 2}); // cut and resumed, too
        server.add("/img.gz", route{gz});
        server.add("/bad.gz", route{gz.substr(0, gz.size() - 100)});
        auto o = s.options();
        auto a =
            co_await fetch(server.base() + "/img.xz", digest_of(xz, digest_algorithm::sha512), o);
        BOOST_TEST(slurp(a) == data);
        BOOST_TEST(server.count("/img.xz") == 2u);
        BOOST_TEST(!fs::exists(a.parent_path() / "data.partial"));
        BOOST_TEST(!fs::exists(a.parent_path() / "data.unpack"));
        auto b = co_await fetch(server.base() + "/img.gz", digest_of(gz), o);
        BOOST_TEST(slurp(b) == data);
        // The digest of the decompressed bytes is not the published one.
        auto m = co_await expect_error(fetch(server.base() + "/img.gz", digest_of(data), o),
                                       errc::digest_mismatch);
        (void)m;
        // A truncated stream whose digest matches: corrupt, nothing cached.
        auto cut_gz = gz.substr(0, gz.size() - 100);
        auto t = co_await expect_error(fetch(server.base() + "/bad.gz", digest_of(cut_gz), o),
                                       errc::protocol_error);
        BOOST_TEST(t.find("gzip") != std::string::npos, t);
        BOOST_TEST(list_cached(o.cache_dir).size() == 2u);
        // Local compressed files too.
        auto c = co_await fetch((s.dir / "img.xz").string(), std::nullopt, o);
        BOOST_TEST(slurp(c) == data);
    });
}

BOOST_AUTO_TEST_CASE(images_larger_than_the_write_back_step) {
    // fetch starts write-back every 8 MiB of the file it will commit: the
    // download, cut and resumed past the first step, and an unpacked image.
    scratch s;
    run([&]() -> asio::awaitable<void> {
        const std::size_t big = 20u << 20;
        auto data = bytes(big, 3);
        auto zeros = std::string(big, '\0') + bytes(1000, 4);
        std::ofstream(s.dir / "zeros", std::ios::binary) << zeros;
        localvm::process::options p;
        p.argv = {"gzip", "-k", "-f", (s.dir / "zeros").string()};
        co_await localvm::process::run_checked(p);
        auto gz = slurp(s.dir / "zeros.gz");
        http_server server(co_await asio::this_coro::executor);
        server.add("/big.img", route{data, (11u << 20) + 17});
        server.add("/zeros.gz", route{gz});
        auto o = s.options();
        auto a = co_await fetch(server.base() + "/big.img", digest_of(data), o);
        BOOST_TEST(slurp(a) == data);
        BOOST_TEST(server.count("/big.img") == 2u);
        auto b = co_await fetch(server.base() + "/zeros.gz", digest_of(gz), o);
        BOOST_TEST(slurp(b) == zeros);
    });
}

BOOST_AUTO_TEST_CASE(two_fetches_in_one_process_download_once) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        http_server server(ex);
        auto data = bytes(size);
        route r{data};
        r.hold_at = cut;
        server.add("/a.img", r);
        auto o = s.options();
        bool second_waits = false;
        auto o2 = o;
        o2.progress = [&](const fetch_progress& p) {
            if (p.waiting) {
                second_waits = true;
                server.release();
            }
        };
        std::vector<fs::path> got;
        asio::steady_timer both(ex, asio::steady_timer::time_point::max());
        auto done = [&](std::exception_ptr e, fs::path p) {
            if (e)
                std::rethrow_exception(e);
            got.push_back(p);
            both.cancel();
        };
        asio::co_spawn(ex, fetch(server.base() + "/a.img", digest_of(data), o), done);
        co_await server.wait_requests(1); // the first one holds the lock
        asio::co_spawn(ex, fetch(server.base() + "/a.img", digest_of(data), o2), done);
        while (got.size() < 2) {
            boost::system::error_code ec;
            co_await both.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        BOOST_TEST(second_waits);
        BOOST_TEST(got[0] == got[1]);
        BOOST_TEST(server.count("/a.img") == 1u);
    });
}

BOOST_AUTO_TEST_CASE(two_processes_download_once) {
    scratch s;
    const char* helper = std::getenv("IMAGE_FETCH_HELPER");
    BOOST_REQUIRE(helper);
    run([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        http_server server(ex);
        auto data = bytes(size);
        route r{data};
        r.hold_at = cut;
        server.add("/a.img", r);
        auto argv = std::vector<std::string>{helper, server.base() + "/a.img",
                                             digest_of(data).text(), (s.dir / "cache").string()};
        localvm::process::options first;
        first.argv = argv;
        first.timeout = 60s;
        localvm::process::child a(ex, first);
        co_await server.wait_requests(1); // a holds the lock and is mid-body
        localvm::process::options second = first;
        second.err.mode = localvm::process::stream_mode::sink;
        second.err.sink = [&](std::string_view line) {
            if (line == "waiting")
                server.release(); // b waits on the lock: let a finish
        };
        localvm::process::child b(ex, second);
        // Both at once: b's stderr is read while b.wait() runs.
        auto [ra, rb] = co_await (a.wait() && b.wait());
        BOOST_TEST(ra.success(), ra.describe() << ": " << ra.err);
        BOOST_TEST(rb.success(), rb.describe());
        BOOST_TEST(ra.out == rb.out);
        BOOST_TEST(slurp(ra.out.substr(0, ra.out.size() - 1)) == data);
        BOOST_TEST(server.count("/a.img") == 1u);
    });
}

BOOST_AUTO_TEST_CASE(cancellation_keeps_the_partial_file_and_no_lock) {
    scratch s;
    run([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        http_server server(ex);
        auto data = bytes(size);
        route r{data};
        r.hold_at = cut;
        server.add("/a.img", r);
        auto o = s.options();

        asio::steady_timer event(ex, asio::steady_timer::time_point::max());
        std::uint64_t seen = 0;
        o.progress = [&](const fetch_progress& p) {
            seen = p.bytes;
            if (p.bytes > 0)
                event.cancel(); // mid-body: the server holds the rest
        };
        asio::cancellation_signal cancel;
        std::exception_ptr outcome;
        bool finished = false;
        asio::co_spawn(
            ex, fetch(server.base() + "/a.img", digest_of(data), o),
            asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, fs::path) {
                outcome = e;
                finished = true;
                event.cancel();
            }));
        while (seen == 0) {
            boost::system::error_code ec;
            co_await event.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        cancel.emit(asio::cancellation_type::terminal);
        while (!finished) {
            boost::system::error_code ec;
            co_await event.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        BOOST_REQUIRE(outcome);
        try {
            std::rethrow_exception(outcome);
        } catch (const boost::system::system_error& e) {
            BOOST_TEST((e.code() == asio::error::operation_aborted), e.what());
        }
        std::string problem;
        auto p =
            paths_of(o.cache_dir, cache_key(*parse_url(server.base() + "/a.img", "/", problem)));
        auto kept = fs::file_size(p.partial);
        BOOST_TEST(kept >= seen);
        BOOST_TEST(kept <= cut);
        BOOST_TEST(!fs::exists(p.unpack));
        BOOST_TEST(!fs::exists(p.data));
        // The lock is free (a short lock timeout would fail otherwise) and
        // the next fetch resumes.
        server.release();
        auto o2 = s.options();
        o2.lock_timeout = 5s;

        auto path = co_await fetch(server.base() + "/a.img", digest_of(data), o2);
        BOOST_TEST(slurp(path) == data);
        BOOST_REQUIRE(server.requests().size() == 2u);
        BOOST_TEST(server.requests()[1].range == "bytes=" + std::to_string(kept) + "-");
    });
}
