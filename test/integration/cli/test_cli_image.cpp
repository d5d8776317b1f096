// The built localvm command's image cache against the image tests' HTTP
// server on 127.0.0.1 (test/integration/image/server.hpp): `image pull` with
// a good digest (downloaded once, listed with its digest), a bad one (one
// error line naming both digests, nothing cached), an offline miss, `image
// rm`, `create --image` making the VM's disk an overlay on its own link to
// the cached image, which a new release or `image rm` leaves alone. Digests
// come from sha256sum/sha512sum, not from the library.
#define BOOST_TEST_MODULE cli_image_integration
#include <localvm/process/child.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "run_cli.hpp"
#include "server.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace json = boost::json;
using localvm::test::http_server;
using localvm::test::route;
using lvcli::scratch;
using namespace std::chrono_literals;

namespace {

/// `localvm args...` on the caller's io_context (the server's), so the
/// server answers while the command runs.
asio::awaitable<lvcli::outcome> run_cli(std::vector<std::string> args,
                                        std::vector<std::string> env) {
    localvm::process::options o;
    o.argv = std::move(args);
    o.argv.insert(o.argv.begin(), lvcli::binary().string());
    o.env_overrides = std::move(env);
    auto r = co_await localvm::process::run(std::move(o));
    co_return lvcli::outcome{r.signal ? 128 + r.signal : r.exit_code, r.out, r.err};
}

/// `co_await cli(env, "image", "list")`: arguments as a pack, since GCC 12
/// miscompiles a braced list inside a `co_await` expression.
template <class... Args>
asio::awaitable<lvcli::outcome> cli(const std::vector<std::string>& env, Args&&... args) {
    return run_cli(std::vector<std::string>{std::string(std::forward<Args>(args))...}, env);
}

/// The hex digest of `file` by coreutils' `TOOL` (sha256sum, sha512sum).
std::string hex_digest(const std::string& tool, const fs::path& file) {
    auto r = lvcli::run_program({tool, file.string()});
    BOOST_REQUIRE_MESSAGE(r.status == 0, tool << ": " << r.err);
    return r.out.substr(0, r.out.find(' '));
}

/// The SHA-256 of `text` (a cache key is the SHA-256 of the URL).
std::string sha256_of_text(const scratch& s, const std::string& text) {
    auto f = s.root / "text";
    std::ofstream(f, std::ios::binary) << text;
    return hex_digest("sha256sum", f);
}

/// A 64 MiB qcow2 (a few hundred KiB of file) as the served image.
struct image_file {
    fs::path path;
    std::string bytes;
    std::string sha512;
};

image_file make_image(const scratch& s) {
    auto p = lvcli::make_base_image(s);
    return {p, lvcli::slurp(p), hex_digest("sha512sum", p)};
}

/// The environment of a run: the scratch's XDG dirs and a cache in it;
/// offline or not whatever the test's own environment says.
std::vector<std::string> env_of(const scratch& s, bool offline = false) {
    auto e = s.env();
    e.push_back("XDG_CACHE_HOME=" + (s.root / "cache").string());
    e.push_back(offline ? "LOCALVM_OFFLINE=1" : "LOCALVM_OFFLINE=");
    return e;
}

fs::path cache_dir(const scratch& s) {
    return s.root / "cache" / "localvm" / "images";
}

std::vector<std::string> lines_of(const std::string& text) {
    lvcli::outcome o;
    o.err = text;
    return o.err_lines();
}

/// The lines of stderr that start with "localvm:" (errors; progress lines
/// do not).
std::vector<std::string> error_lines(const lvcli::outcome& r) {
    std::vector<std::string> errors;
    for (auto& l : r.err_lines())
        if (l.starts_with("localvm:"))
            errors.push_back(l);
    return errors;
}

void check_one_error(const lvcli::outcome& r, const std::string& prefix) {
    BOOST_TEST(r.status == 1, "exit " << r.status << ", stderr: " << r.err);
    auto errors = error_lines(r);
    BOOST_TEST_REQUIRE(errors.size() == 1u, r.err);
    BOOST_TEST(errors[0].starts_with(prefix), errors[0]);
    BOOST_TEST(r.err_lines().back() == errors[0], r.err); // the error is the last word
}

void run(std::function<asio::awaitable<void>()> body) {
    localvm::testing::run_coroutine(std::move(body), 120s, "the image CLI scenario");
}

} // namespace

BOOST_AUTO_TEST_CASE(pull_list_rm_with_digests_and_offline) {
    scratch s;
    auto img = make_image(s);
    const auto env = env_of(s);
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        server.add("/debian.qcow2", route{img.bytes});
        server.add("/other.qcow2", route{img.bytes});
        const auto url = server.base() + "/debian.qcow2";
        const auto other = server.base() + "/other.qcow2";
        const auto key = sha256_of_text(s, url);
        const auto data = cache_dir(s) / "by-url-sha256" / key / "data";

        auto empty = co_await cli(env, "image", "list");
        BOOST_TEST(empty.status == 0, empty.err);
        BOOST_TEST(empty.out == "no cached images\n");

        // A good digest: fetched, verified, printed as the cached path.
        auto pulled = co_await cli(env, "image", "pull", url, "--sha512", img.sha512);
        BOOST_TEST(pulled.status == 0, pulled.err);
        BOOST_TEST(pulled.out == data.string() + "\n");
        BOOST_TEST(pulled.err.find("sha512:" + img.sha512 + " verified") != std::string::npos,
                   pulled.err);
        BOOST_TEST(server.count("/debian.qcow2") == 1u);
        BOOST_TEST((lvcli::slurp(data) == img.bytes));

        // Again, with the digest, without it, and offline: no download.
        auto again = co_await cli(env, "image", "pull", url, "--sha512", img.sha512);
        BOOST_TEST(again.status == 0, again.err);
        BOOST_TEST(again.out == pulled.out);
        auto bare = co_await cli(env, "image", "pull", url);
        BOOST_TEST(bare.status == 0, bare.err);
        BOOST_TEST(bare.out == pulled.out);
        const auto offline_env = env_of(s, true);
        auto cached_offline =
            co_await cli(offline_env, "image", "pull", url, "--sha512", img.sha512);
        BOOST_TEST(cached_offline.status == 0, cached_offline.err);
        BOOST_TEST(server.count("/debian.qcow2") == 1u);

        // Listed with its key, size and digest.
        auto listed = co_await cli(env, "image", "list");
        BOOST_TEST(listed.status == 0, listed.err);
        auto lines = lines_of(listed.out);
        BOOST_TEST_REQUIRE(lines.size() == 2u, lines.size() << " lines: " << listed.out);
        BOOST_TEST(lines[0].starts_with("KEY"), lines[0]);
        BOOST_TEST(lines[1].starts_with(key.substr(0, 12)), lines[1]);
        BOOST_TEST(lines[1].find("sha512:" + img.sha512.substr(0, 12)) != std::string::npos,
                   lines[1]);
        BOOST_TEST(lines[1].ends_with(url), lines[1]);

        // A bad digest: one error line naming both, nothing cached.
        std::string wrong = img.sha512;
        wrong[0] = wrong[0] == '0' ? '1' : '0';
        auto bad = co_await cli(env, "image", "pull", other, "--sha512", wrong);
        check_one_error(bad, "localvm: image pull: " + other + ": expected sha512:" + wrong);
        auto msg = error_lines(bad).at(0);
        BOOST_TEST(msg.find("expected sha512:" + wrong) != std::string::npos, msg);
        BOOST_TEST(msg.find("got sha512:" + img.sha512) != std::string::npos, msg);
        BOOST_TEST(bad.out.empty(), bad.out);
        BOOST_TEST(server.count("/other.qcow2") == 1u);
        auto other_dir = cache_dir(s) / "by-url-sha256" / sha256_of_text(s, other);
        const std::vector<std::string> entry_files = {"data", "data.partial", "data.unpack",
                                                      "digest"};
        for (const auto& f : entry_files)
            BOOST_TEST(!fs::exists(other_dir / f), "left behind: " << (other_dir / f));
        BOOST_TEST((co_await cli(env, "image", "list")).out == listed.out);

        // A bad SHA-256 of the cached image: fetched again (the URL may
        // serve a new release), refused, and the verified copy is kept.
        auto bad256 = co_await cli(env, "image", "pull", url, "--sha256", std::string(64, 'a'));
        check_one_error(bad256, "localvm: image pull: " + url + ": expected sha256:");
        BOOST_TEST(error_lines(bad256).at(0).find("expected sha256:" + std::string(64, 'a')) !=
                   std::string::npos);
        BOOST_TEST(server.count("/debian.qcow2") == 2u);
        BOOST_TEST((lvcli::slurp(data) == img.bytes));
        BOOST_TEST((co_await cli(env, "image", "list")).out == listed.out);

        // Offline, a URL not in the cache: a clear error, no request.
        auto third = server.base() + "/third.qcow2";
        auto miss = co_await cli(offline_env, "image", "pull", third, "--sha512", img.sha512);
        check_one_error(miss, "localvm: image pull: offline (LOCALVM_OFFLINE is set): " + third +
                                  " is not in the image cache " + cache_dir(s).string());
        BOOST_TEST(server.count("/third.qcow2") == 0u);
        BOOST_TEST(!fs::exists(cache_dir(s) / "by-url-sha256" / sha256_of_text(s, third)));
        BOOST_TEST((co_await cli(env, "image", "list")).out == listed.out);

        // rm by URL: gone from the list and the disk; a second rm fails.
        auto rm = co_await cli(env, "image", "rm", url);
        BOOST_TEST(rm.status == 0, rm.err);
        BOOST_TEST(!fs::exists(data));
        BOOST_TEST((co_await cli(env, "image", "list")).out == "no cached images\n");
        auto rm2 = co_await cli(env, "image", "rm", url);
        check_one_error(rm2, "localvm: image rm: " + url + " is not in the image cache " +
                                 cache_dir(s).string());

        // rm by the full key that `list` abbreviates; into --cache-dir.
        const auto elsewhere = s.root / "elsewhere";
        auto into = co_await cli(env, "image", "pull", url, "--sha512", img.sha512, "--cache-dir",
                                 elsewhere.string());
        BOOST_TEST(into.status == 0, into.err);
        BOOST_TEST(into.out == (elsewhere / "by-url-sha256" / key / "data").string() + "\n");
        BOOST_TEST((co_await cli(env, "image", "list")).out == "no cached images\n");
        auto by_key = co_await cli(env, "image", "rm", key, "--cache-dir", elsewhere.string());
        BOOST_TEST(by_key.status == 0, by_key.err);
        BOOST_TEST(!fs::exists(elsewhere / "by-url-sha256" / key / "data"));
        auto by_key2 = co_await cli(env, "image", "rm", key, "--cache-dir", elsewhere.string());
        check_one_error(by_key2, "localvm: image rm: " + key + " is not in the image cache");
        BOOST_TEST(server.count("/debian.qcow2") == 3u);
    });
}

BOOST_AUTO_TEST_CASE(create_with_image_overlays_the_cached_image) {
    scratch s;
    auto img = make_image(s);
    const auto env = env_of(s);
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        server.add("/debian.qcow2", route{img.bytes});
        const auto url = server.base() + "/debian.qcow2";
        const auto data = cache_dir(s) / "by-url-sha256" / sha256_of_text(s, url) / "data";

        auto created = co_await cli(env, "create", "vm1", "--image", url, "--sha512", img.sha512);
        BOOST_TEST_REQUIRE(created.status == 0, created.err);
        BOOST_TEST(server.count("/debian.qcow2") == 1u);
        const auto disk = s.root / "data" / "localvm" / "vm1" / "disk.qcow2";
        auto info = lvcli::run_program(
            {"qemu-img", "info", "--backing-chain", "--output=json", "-U", disk.string()});
        BOOST_TEST_REQUIRE(info.status == 0, info.err);
        auto chain = json::parse(info.out).as_array();
        BOOST_TEST_REQUIRE(chain.size() == 2u, info.out);
        BOOST_TEST(chain[0].at("filename").as_string() == disk.string());
        BOOST_TEST(chain[0].at("format").as_string() == "qcow2");
        // The VM's own hard link to the cached image is its base.
        const auto own = s.root / "data" / "localvm" / "vm1" / "base.img";
        BOOST_TEST(chain[0].at("full-backing-filename").as_string() == own.string());
        BOOST_TEST(chain[0].at("backing-filename-format").as_string() == "qcow2");
        BOOST_TEST(chain[0].at("virtual-size").as_int64() == 64 << 20);
        BOOST_TEST(chain[1].at("filename").as_string() == own.string());
        BOOST_TEST(chain[1].at("format").as_string() == "qcow2");
        BOOST_TEST(fs::equivalent(own, data));

        // A second VM on the same image: no new download.
        auto second = co_await cli(env, "create", "vm2", "--image", url, "--sha512", img.sha512);
        BOOST_TEST(second.status == 0, second.err);
        BOOST_TEST(server.count("/debian.qcow2") == 1u);

        // A wrong digest: refused, no VM, and vm1's backing file stays.
        std::string wrong = img.sha512;
        wrong[0] = wrong[0] == '0' ? '1' : '0';
        auto bad = co_await cli(env, "create", "vm3", "--image", url, "--sha512", wrong);
        check_one_error(bad, "localvm: create vm3: ");
        BOOST_TEST(!fs::exists(s.root / "data" / "localvm" / "vm3"));
        BOOST_TEST((lvcli::slurp(data) == img.bytes));

        // up with an image that is not cached, offline: nothing made.
        const auto offline_env = env_of(s, true);
        auto missing = server.base() + "/missing.qcow2";
        auto up =
            co_await cli(offline_env, "up", "vm4", "--image", missing, "--sha512", img.sha512);
        check_one_error(up, "localvm: up vm4: offline (LOCALVM_OFFLINE is set): ");
        BOOST_TEST(!fs::exists(s.root / "data" / "localvm" / "vm4"));
        BOOST_TEST(!fs::exists(s.root / "run" / "localvm" / "vm4"));
        BOOST_TEST(server.count("/missing.qcow2") == 0u);

        const std::vector<std::string> vms = {"vm1", "vm2"};
        for (const auto& vm : vms) {
            auto del = co_await cli(env, "delete", vm);
            BOOST_TEST(del.status == 0, del.err);
        }
        // The cached image outlives the VMs.
        BOOST_TEST((lvcli::slurp(data) == img.bytes));
    });
}

// The URL publishes a new release (a new digest): pulling it replaces the
// cache entry, and `image rm` removes it, yet a VM made on the old one keeps
// its base, byte for byte.
BOOST_AUTO_TEST_CASE(a_new_release_or_rm_leaves_existing_vms_their_base) {
    scratch s;
    auto v1 = make_image(s);
    auto v2_path = s.root / "v2.qcow2";
    BOOST_REQUIRE(
        lvcli::run_program({"qemu-img", "create", "-q", "-f", "qcow2", v2_path.string(), "128M"})
            .status == 0);
    const std::string v2 = lvcli::slurp(v2_path);
    const auto v2_sha512 = hex_digest("sha512sum", v2_path);
    const auto env = env_of(s);
    run([&]() -> asio::awaitable<void> {
        http_server server(co_await asio::this_coro::executor);
        server.add("/latest.qcow2", route{v1.bytes});
        const auto url = server.base() + "/latest.qcow2";
        const auto data = cache_dir(s) / "by-url-sha256" / sha256_of_text(s, url) / "data";
        auto created = co_await cli(env, "create", "old", "--image", url, "--sha512", v1.sha512);
        BOOST_TEST_REQUIRE(created.status == 0, created.err);
        const auto own = s.root / "data" / "localvm" / "old" / "base.img";

        server.add("/latest.qcow2", route{v2});
        auto pulled = co_await cli(env, "image", "pull", url, "--sha512", v2_sha512);
        BOOST_TEST_REQUIRE(pulled.status == 0, pulled.err);
        BOOST_TEST((lvcli::slurp(data) == v2));
        BOOST_TEST((lvcli::slurp(own) == v1.bytes));
        auto info = lvcli::run_program({"qemu-img", "info", "--backing-chain", "--output=json",
                                        "-U", (own.parent_path() / "disk.qcow2").string()});
        BOOST_TEST_REQUIRE(info.status == 0, info.err);
        auto chain = json::parse(info.out).as_array();
        BOOST_TEST(chain.at(0).at("virtual-size").as_int64() == 64 << 20);
        BOOST_TEST(chain.at(1).at("filename").as_string() == own.string());

        auto rm = co_await cli(env, "image", "rm", url);
        BOOST_TEST(rm.status == 0, rm.err);
        BOOST_TEST(!fs::exists(data));
        BOOST_TEST((lvcli::slurp(own) == v1.bytes));
        auto del = co_await cli(env, "delete", "old");
        BOOST_TEST(del.status == 0, del.err);
        BOOST_TEST(!fs::exists(own));
    });
}

// A file:// URL and a plain path are cached like downloads.
BOOST_AUTO_TEST_CASE(file_urls_and_paths_are_cached) {
    scratch s;
    auto img = make_image(s);
    const auto env = env_of(s);
    run([&]() -> asio::awaitable<void> {
        const auto url = "file://" + img.path.string();
        auto pulled = co_await cli(env, "image", "pull", url, "--sha512", img.sha512);
        BOOST_TEST(pulled.status == 0, pulled.err);
        const auto data = cache_dir(s) / "by-url-sha256" / sha256_of_text(s, url) / "data";
        BOOST_TEST(pulled.out == data.string() + "\n");
        BOOST_TEST((lvcli::slurp(data) == img.bytes));
        auto by_path = co_await cli(env, "image", "pull", img.path.string());
        BOOST_TEST(by_path.status == 0, by_path.err);
        BOOST_TEST(by_path.out == pulled.out, "a path is its file:// URL");
        auto listed = co_await cli(env, "image", "list");
        BOOST_TEST(listed.out.find(url) != std::string::npos, listed.out);
        auto rm = co_await cli(env, "image", "rm", img.path.string());
        BOOST_TEST(rm.status == 0, rm.err);
        BOOST_TEST((co_await cli(env, "image", "list")).out == "no cached images\n");
    });
}
