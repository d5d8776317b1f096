// The cache layout: keys, paths, digest files, and list/find/remove on a
// scratch directory.
#define BOOST_TEST_MODULE image_cache
#include <localvm/error.hpp>
#include <localvm/image/cache.hpp>

#include <boost/test/unit_test.hpp>

#include <fstream>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

using namespace localvm::image;
namespace fs = std::filesystem;

namespace {
url must(std::string_view text) {
    std::string problem;
    auto u = parse_url(text, "/", problem);
    BOOST_TEST_REQUIRE(u.has_value(), problem);
    return *u;
}
void write(const fs::path& p, std::string_view text) {
    std::ofstream(p, std::ios::binary) << text;
}
struct scratch {
    fs::path dir;
    scratch() {
        char tmpl[] = "/tmp/localvm-image-cache-XXXXXX";
        dir = ::mkdtemp(tmpl);
    }
    ~scratch() { fs::remove_all(dir); }
};
const std::string h256 = std::string(64, 'a');
} // namespace

BOOST_AUTO_TEST_CASE(key_is_the_sha256_of_the_canonical_url) {
    // printf '%s' 'http://h/a' | sha256sum
    BOOST_TEST(cache_key(must("http://h/a")) ==
               "c43fa283946b81455781ee66e2429e922951961b9f11ec301adaef81f333835e");
    BOOST_TEST(cache_key(must("HTTP://H:80/a")) == cache_key(must("http://h/a")));
    BOOST_TEST(cache_key(must("http://h/a")) != cache_key(must("https://h/a")));
    BOOST_TEST(is_cache_key(cache_key(must("/x"))));
    BOOST_TEST(!is_cache_key("abc"));
    BOOST_TEST(!is_cache_key(std::string(64, 'A')));
    auto p = paths_of("/c", "k");
    BOOST_TEST(p.dir == "/c/by-url-sha256/k");
    BOOST_TEST(p.data == "/c/by-url-sha256/k/data");
    BOOST_TEST(p.partial == "/c/by-url-sha256/k/data.partial");
    BOOST_TEST(p.lock == "/c/by-url-sha256/k/lock");
}

BOOST_AUTO_TEST_CASE(digest_files_round_trip) {
    std::string problem;
    auto a = *parse_digest("sha256:" + h256, problem);
    auto b = *parse_digest("sha512:" + std::string(128, '0'), problem);
    auto text = format_digests({a, b});
    BOOST_TEST(text == "sha256:" + h256 + "\nsha512:" + std::string(128, '0') + "\n");
    auto back = parse_digests(text + "junk\n\n");
    BOOST_REQUIRE(back.size() == 2u);
    BOOST_TEST((back[0] == a));
    BOOST_TEST((back[1] == b));
}

BOOST_AUTO_TEST_CASE(lists_finds_and_removes_complete_entries) {
    scratch s;
    BOOST_TEST(list_cached(s.dir).empty()); // no by-url-sha256 yet
    auto key = cache_key(must("http://h/a"));
    auto p = paths_of(s.dir, key);
    fs::create_directories(p.dir);
    write(p.url, "http://h/a\n"); // one line, as fetch writes it
    write(p.data, "12345");
    BOOST_TEST(!find_cached(s.dir, key)); // no digest: not verified
    write(p.digest, "sha256:" + h256 + "\n");
    auto c = find_cached(s.dir, key);
    BOOST_REQUIRE(c);
    BOOST_TEST(c->url == "http://h/a");
    BOOST_TEST(c->size == 5u);
    BOOST_TEST(c->digests.size() == 1u);
    BOOST_TEST(list_cached(s.dir).size() == 1u);

    // Being fetched: the lock is held elsewhere.
    int fd = ::open(p.lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::flock(fd, LOCK_EX) == 0);
    try {
        remove_cached(s.dir, key);
        BOOST_FAIL("removed an entry being downloaded");
    } catch (const localvm::error& e) {
        BOOST_TEST((e.code() == localvm::errc::busy));
    }
    ::close(fd);
    write(p.partial, "12");
    BOOST_TEST(remove_cached(s.dir, key));
    BOOST_TEST(!fs::exists(p.dir));
    BOOST_TEST(!remove_cached(s.dir, key));
    BOOST_CHECK_THROW(remove_cached(s.dir, "nope"), localvm::error);
}
