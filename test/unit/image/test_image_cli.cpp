// The command line of `image` and `--image`, and the progress bar and list.
#define BOOST_TEST_MODULE image_cli
#include <boost/test/unit_test.hpp>

#include "cli.hpp"
#include "image_view.hpp"

using namespace localvm::cli;

namespace {
const std::string h512(128, 'a');
std::variant<invocation, usage_error> parse_words(std::vector<std::string> w) {
    return parse(w);
}
std::string error_of(std::vector<std::string> w) {
    auto r = parse_words(std::move(w));
    BOOST_REQUIRE(std::holds_alternative<usage_error>(r));
    return std::get<usage_error>(r).message;
}
} // namespace

BOOST_AUTO_TEST_CASE(image_actions) {
    auto r = parse_words(
        {"image", "pull", "https://h/a.qcow2", "--sha512", h512, "--ca-file", "ca.pem"});
    BOOST_REQUIRE(std::holds_alternative<invocation>(r));
    auto i = std::get<invocation>(r);
    BOOST_TEST((i.cmd == command::image));
    BOOST_TEST(i.image_action == "pull");
    BOOST_TEST(i.image == "https://h/a.qcow2");
    BOOST_TEST(i.image_digest->text() == "sha512:" + h512);
    BOOST_TEST(i.ca_file == "ca.pem");
    BOOST_TEST(std::get<invocation>(parse_words({"image", "list"})).image_action == "list");
    BOOST_TEST(std::get<invocation>(parse_words({"image", "rm", "KEY"})).image == "KEY");
    BOOST_TEST(error_of({"image"}) == "image: missing ACTION (pull, list or rm)");
    BOOST_TEST(error_of({"image", "get", "u"}) ==
               "image: unknown action \"get\" (expected pull, list or rm)");
    BOOST_TEST(error_of({"image", "pull"}) == "image: missing URL");
    BOOST_TEST(error_of({"image", "list", "x"}) == "image: unexpected argument \"x\"");
    BOOST_TEST(error_of({"image", "rm", "k", "--sha512", h512}) ==
               "image: rm takes no --sha256/--sha512");
    BOOST_TEST(error_of({"image", "pull", "u", "--sha256", "xyz"}) ==
               "image: --sha256: sha256 digest must have 64 hex digits, got 3");
}

BOOST_AUTO_TEST_CASE(create_and_up_take_an_image) {
    auto r = parse_words({"create", "vm", "--image", "http://h/a.img", "--sha512", h512});
    BOOST_REQUIRE(std::holds_alternative<invocation>(r));
    BOOST_TEST(std::get<invocation>(r).image == "http://h/a.img");
    BOOST_TEST(std::holds_alternative<invocation>(parse_words({"up", "vm", "--image", "/a.img"})));
    BOOST_TEST(error_of({"create", "vm"}) == "create: missing --base IMAGE or --image URL");
    BOOST_TEST(error_of({"create", "vm", "--base", "b", "--image", "u"}) ==
               "create: --base and --image cannot be used together");
    BOOST_TEST(error_of({"up", "vm", "--base", "b", "--sha512", h512}) ==
               "up: --sha256, --sha512, --cache-dir and --ca-file need --image");
    BOOST_TEST(error_of({"start", "vm", "--image", "u"}) == "start: unknown option \"--image\"");
}

BOOST_AUTO_TEST_CASE(progress_bar_and_list) {
    BOOST_TEST(human_bytes(812) == "812 B");
    BOOST_TEST(human_bytes(1536) == "1.5 KiB");
    BOOST_TEST(human_bytes(300u << 20) == "300.0 MiB");
    localvm::image::fetch_progress p;
    p.bytes = 45u << 20;
    p.total = 100u << 20;
    p.bytes_per_second = 2u << 20;
    BOOST_TEST(render_fetch_progress(p, 60) ==
               "[==========>             ]  45% 45.0 MiB/100.0 MiB 2.0 MiB/s");
    BOOST_TEST(render_fetch_progress(p, 60).size() == 60u);
    BOOST_TEST(render_fetch_progress(p, 0) == " 45% 45.0 MiB/100.0 MiB 2.0 MiB/s");
    p.total.reset();
    BOOST_TEST(render_fetch_progress(p, 60) == "45.0 MiB 2.0 MiB/s");
    p.waiting = true;
    BOOST_TEST(render_fetch_progress(p, 60) == "waiting for another process fetching it");
    BOOST_TEST(render_image_list({}) == "no cached images\n");
    localvm::image::cached_image c;
    c.key = std::string(64, 'b');
    c.url = "https://h/a.qcow2";
    c.size = 1536;
    c.digests = {{localvm::image::digest_algorithm::sha512, h512}};
    BOOST_TEST(render_image_list({c}) ==
               "KEY           SIZE        DIGEST               URL\n"
               "bbbbbbbbbbbb  1.5 KiB     sha512:aaaaaaaaaaaa  https://h/a.qcow2\n");
}
