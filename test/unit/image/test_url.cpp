// Image URLs and plain paths parsed, canonicalised, and redirects resolved.
#define BOOST_TEST_MODULE image_url
#include <localvm/image/url.hpp>

#include <boost/test/unit_test.hpp>

using namespace localvm::image;

namespace {
url must(std::string_view text, const std::filesystem::path& cwd = "/home/u") {
    std::string problem;
    auto u = parse_url(text, cwd, problem);
    BOOST_TEST_REQUIRE(u.has_value(), "parse_url(" << text << "): " << problem);
    return *u;
}
std::string refused(std::string_view text) {
    std::string problem;
    auto u = parse_url(text, "/home/u", problem);
    BOOST_TEST(!u.has_value(), text << " was accepted");
    BOOST_TEST(!problem.empty());
    return problem;
}
} // namespace

BOOST_AUTO_TEST_CASE(http_and_https) {
    auto a = must("https://cloud.debian.org/images/cloud/bookworm/latest/"
                  "debian-12-genericcloud-amd64.qcow2");
    BOOST_TEST((a.scheme == scheme::https));
    BOOST_TEST(a.host == "cloud.debian.org");
    BOOST_TEST(a.port == 443);
    BOOST_TEST(a.target == "/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2");
    BOOST_TEST((a.compression == compression::none));
    auto b = must("HTTP://LocalHost:8080");
    BOOST_TEST(b.host == "localhost");
    BOOST_TEST(b.port == 8080);
    BOOST_TEST(b.target == "/");
    BOOST_TEST(b.text == "http://localhost:8080/");
    auto c = must("http://127.0.0.1:80/x.img?sig=1#frag");
    BOOST_TEST(c.target == "/x.img?sig=1");
    BOOST_TEST(c.text == "http://127.0.0.1/x.img?sig=1"); // default port dropped
    auto d = must("http://[::1]:9/a");
    BOOST_TEST(d.host == "::1");
    BOOST_TEST(d.port == 9);
    BOOST_TEST(d.text == "http://[::1]:9/a");
    BOOST_TEST(authority(d) == "[::1]:9");
    auto e = must("http://h?q");
    BOOST_TEST(e.target == "/?q");
}

BOOST_AUTO_TEST_CASE(compression_from_the_path) {
    BOOST_TEST((must("http://h/a.qcow2.xz").compression == compression::xz));
    BOOST_TEST((must("http://h/a.raw.gz?x=1").compression == compression::gzip));
    BOOST_TEST((must("http://h/a?x.gz").compression == compression::none));
    BOOST_TEST((must("/srv/a.img.xz").compression == compression::xz));
}

BOOST_AUTO_TEST_CASE(files_and_plain_paths) {
    auto a = must("file:///srv/images/a%20b.qcow2");
    BOOST_TEST((a.scheme == scheme::file));
    BOOST_TEST(a.path == "/srv/images/a b.qcow2");
    BOOST_TEST(a.text == "file:///srv/images/a b.qcow2");
    auto b = must("file://localhost/srv/x");
    BOOST_TEST(b.path == "/srv/x");
    auto c = must("images/../img.qcow2", "/home/u");
    BOOST_TEST(c.path == "/home/u/img.qcow2");
    BOOST_TEST(c.text == "file:///home/u/img.qcow2");
    // The same file by path and by URL shares a cache entry.
    BOOST_TEST(must("/home/u/img.qcow2").text == must("file:///home/u/img.qcow2").text);
}

BOOST_AUTO_TEST_CASE(refusals_name_the_problem) {
    BOOST_TEST(refused("ftp://h/x").find("unsupported URL scheme \"ftp\"") != std::string::npos);
    BOOST_TEST(refused("http://user:pw@h/x").find("user information") != std::string::npos);
    BOOST_TEST(refused("http:///x").find("no host") != std::string::npos);
    BOOST_TEST(refused("http://h:0/x").find("bad port") != std::string::npos);
    BOOST_TEST(refused("http://h:65536/x").find("bad port") != std::string::npos);
    BOOST_TEST(refused("http://h:8a/x").find("bad port") != std::string::npos);
    BOOST_TEST(refused("http://h:/x").find("empty port") != std::string::npos);
    BOOST_TEST(refused("http://h/a b").find("space") != std::string::npos);
    BOOST_TEST(refused("http://[::1/x").find("IPv6") != std::string::npos);
    BOOST_TEST(refused("file://other/x").find("names a host") != std::string::npos);
    BOOST_TEST(refused("file:///a%2").find("%-escape") != std::string::npos);
    BOOST_TEST(refused("file:///a%00b").find("%-escape") != std::string::npos);
    BOOST_TEST(refused("").find("empty") != std::string::npos);
    std::string problem;
    BOOST_TEST(!parse_url("rel", "relative/cwd", problem));
}

BOOST_AUTO_TEST_CASE(redirects_resolve_against_the_base) {
    auto base = must("https://h:8443/dir/sub/a.qcow2.xz?x");
    std::string problem;
    auto abs = resolve_location(base, "https://mirror.example/p/b", problem);
    BOOST_REQUIRE(abs);
    BOOST_TEST(abs->text == "https://mirror.example/p/b");
    BOOST_TEST((abs->compression == compression::xz)); // the original URL decides
    auto net = resolve_location(base, "//m2/q", problem);
    BOOST_REQUIRE(net);
    BOOST_TEST(net->text == "https://m2/q");
    auto rooted = resolve_location(base, "/other", problem);
    BOOST_REQUIRE(rooted);
    BOOST_TEST(rooted->text == "https://h:8443/other");
    auto rel = resolve_location(base, "b.img", problem);
    BOOST_REQUIRE(rel);
    BOOST_TEST(rel->text == "https://h:8443/dir/sub/b.img");

    BOOST_TEST(!resolve_location(base, "http://h/x", problem));
    BOOST_TEST(problem.find("https to http") != std::string::npos);
    BOOST_TEST(!resolve_location(base, "file:///etc/passwd", problem));
    BOOST_TEST(problem.find("non-HTTP") != std::string::npos);
    BOOST_TEST(!resolve_location(base, "", problem));
    auto plain = must("http://h/a");
    auto up = resolve_location(plain, "https://h/a", problem);
    BOOST_REQUIRE(up); // an upgrade is fine
    BOOST_TEST((up->scheme == scheme::https));
}
