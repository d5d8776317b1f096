// The download decisions: redirect, resume, restart, complete, fail.
#define BOOST_TEST_MODULE image_http
#include <localvm/image/http.hpp>

#include <boost/test/unit_test.hpp>

using namespace localvm::image;
using localvm::errc;

namespace {
response_facts facts(unsigned status, std::string reason = "") {
    response_facts r;
    r.status = status;
    r.reason = std::move(reason);
    return r;
}
} // namespace

BOOST_AUTO_TEST_CASE(content_range_forms) {
    auto a = parse_content_range("bytes 100-199/1000");
    BOOST_REQUIRE(a);
    BOOST_TEST(*a->first == 100u);
    BOOST_TEST(*a->last == 199u);
    BOOST_TEST(*a->complete_length == 1000u);
    auto b = parse_content_range("bytes 5-9/*");
    BOOST_REQUIRE(b);
    BOOST_TEST(!b->complete_length);
    auto c = parse_content_range("bytes */42");
    BOOST_REQUIRE(c);
    BOOST_TEST(!c->first);
    BOOST_TEST(*c->complete_length == 42u);
    for (const char* bad :
         {"bytes 9-5/10", "bytes 0-10/10", "items 0-1/2", "bytes 0-1", "bytes */*", "bytes -1/2",
          "bytes 0-1/x", "bytes 0-/2", "", "bytes  0-1/2"})
        BOOST_TEST(!parse_content_range(bad), bad);
}

BOOST_AUTO_TEST_CASE(range_header_only_past_zero) {
    BOOST_TEST(!range_header(0));
    BOOST_TEST(*range_header(1234) == "bytes=1234-");
}

BOOST_AUTO_TEST_CASE(redirects_are_bounded) {
    for (unsigned s : {301u, 302u, 303u, 307u, 308u}) {
        auto r = facts(s);
        r.location = "/next";
        auto d = decide(r, 0, 0, 3);
        BOOST_TEST((d.action == response_action::redirect));
        BOOST_TEST(d.location == "/next");
        auto last = decide(r, 0, 2, 3);
        BOOST_TEST((last.action == response_action::redirect));
        auto over = decide(r, 0, 3, 3);
        BOOST_TEST((over.action == response_action::fail));
        BOOST_TEST(over.problem == "too many redirects (more than 3)");
    }
    auto d = decide(facts(302, "Found"), 0, 0, 3);
    BOOST_TEST((d.action == response_action::fail));
    BOOST_TEST(d.problem == "HTTP 302 Found without a Location");
}

BOOST_AUTO_TEST_CASE(a_whole_file) {
    auto r = facts(200);
    r.content_length = 1000;
    auto d = decide(r, 0, 0, 10);
    BOOST_TEST((d.action == response_action::write_body));
    BOOST_TEST(d.offset == 0u);
    BOOST_TEST(*d.total == 1000u);
    // A server that ignores Range answers 200: start over at 0.
    auto again = decide(r, 600, 0, 10);
    BOOST_TEST((again.action == response_action::write_body));
    BOOST_TEST(again.offset == 0u);
    r.content_length.reset(); // chunked: total unknown
    BOOST_TEST(!decide(r, 0, 0, 10).total);
}

BOOST_AUTO_TEST_CASE(resume_only_where_the_range_matches) {
    auto r = facts(206);
    r.content_range = "bytes 600-999/1000";
    r.content_length = 400;
    auto d = decide(r, 600, 0, 10);
    BOOST_TEST((d.action == response_action::write_body));
    BOOST_TEST(d.offset == 600u);
    BOOST_TEST(*d.total == 1000u);
    // Starts elsewhere, disagrees with Content-Length, is malformed, is
    // missing, or was never asked for: start over.
    BOOST_TEST((decide(r, 500, 0, 10).action == response_action::restart));
    r.content_length = 399;
    BOOST_TEST((decide(r, 600, 0, 10).action == response_action::restart));
    r.content_length.reset();
    BOOST_TEST((decide(r, 600, 0, 10).action == response_action::write_body));
    r.content_range = "bytes 600-999/900";
    BOOST_TEST((decide(r, 600, 0, 10).action == response_action::restart));
    r.content_range.reset();
    BOOST_TEST((decide(r, 600, 0, 10).action == response_action::restart));
    r.content_range = "bytes 0-999/1000";
    BOOST_TEST((decide(r, 0, 0, 10).action == response_action::restart));
}

BOOST_AUTO_TEST_CASE(unsatisfiable_range) {
    auto r = facts(416, "Range Not Satisfiable");
    r.content_range = "bytes */1000";
    auto done = decide(r, 1000, 0, 10);
    BOOST_TEST((done.action == response_action::complete));
    BOOST_TEST(done.offset == 1000u);
    BOOST_TEST((decide(r, 1200, 0, 10).action == response_action::restart));
    r.content_range.reset();
    BOOST_TEST((decide(r, 1000, 0, 10).action == response_action::restart));
    auto odd = decide(r, 0, 0, 10);
    BOOST_TEST((odd.action == response_action::fail));
}

BOOST_AUTO_TEST_CASE(failures_say_the_status) {
    auto nf = decide(facts(404, "Not Found"), 0, 0, 10);
    BOOST_TEST((nf.action == response_action::fail));
    BOOST_TEST((nf.code == errc::not_found));
    BOOST_TEST(nf.problem == "HTTP 404 Not Found");
    BOOST_TEST((decide(facts(410), 0, 0, 10).code == errc::not_found));
    auto se = decide(facts(503, "Service Unavailable"), 0, 0, 10);
    BOOST_TEST((se.code == errc::protocol_error));
    BOOST_TEST(se.problem == "HTTP 503 Service Unavailable");
    BOOST_TEST(decide(facts(204), 0, 0, 10).problem == "HTTP 204");
}
