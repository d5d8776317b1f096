// libvirt::detail::console_scan: console stream bytes to lines, matches,
// echo and tail, at every split of the input.
#define BOOST_TEST_MODULE libvirt_console_scan
#include <localvm/console/wait.hpp>

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "libvirt/console_scan.hpp"

using localvm::console::text_matcher;
using localvm::libvirt::detail::console_scan;

BOOST_AUTO_TEST_CASE(the_first_matching_line_at_every_split) {
    const std::string data = "boot 1\r\nlocalvm-tiny: ssh ready\r\nafter\nlogin: ";
    const text_matcher ready("ssh ready");
    for (std::size_t cut = 0; cut <= data.size(); ++cut) {
        BOOST_TEST_CONTEXT("cut at " << cut) {
            // As read_console does: stop at the first chunk that matches.
            console_scan scan;
            auto found = scan.feed(std::string_view(data).substr(0, cut), &ready, true);
            if (!found)
                found = scan.feed(std::string_view(data).substr(cut), &ready, true);
            BOOST_REQUIRE(found.has_value());
            BOOST_TEST(*found == "localvm-tiny: ssh ready");

            // Every complete line is echoed and kept, also after a match.
            std::vector<std::string> echoed;
            console_scan all([&](std::string_view l) { echoed.emplace_back(l); });
            all.feed(std::string_view(data).substr(0, cut), &ready, false);
            all.feed(std::string_view(data).substr(cut), &ready, false);
            BOOST_TEST(echoed.size() == 3u);
            BOOST_TEST(echoed.back() == "console: after");
            BOOST_TEST(all.tail() == "boot 1\nlocalvm-tiny: ssh ready\nafter\nlogin: ");
        }
    }
}

BOOST_AUTO_TEST_CASE(an_unfinished_line_matches_only_when_asked) {
    const text_matcher prompt("login:");
    console_scan scan;
    BOOST_TEST(!scan.feed("tiny login: ", &prompt, false).has_value());
    auto got = scan.feed("", &prompt, true);
    BOOST_REQUIRE(got.has_value());
    BOOST_TEST(*got == "tiny login: ");
    BOOST_TEST(!scan.feed("more", nullptr, true).has_value()); // no matcher: nothing matches
}

// A wait that ends on an unfinished line (the rest of it not read yet)
// still shows that line in the output, once.
BOOST_AUTO_TEST_CASE(a_matching_unfinished_line_is_echoed_once) {
    const text_matcher marker("stream-marker-42");
    std::vector<std::string> echoed;
    console_scan scan([&](std::string_view l) { echoed.emplace_back(l); });
    BOOST_TEST(!scan.feed("x\r\nstream-marker", &marker, true).has_value());
    BOOST_TEST(echoed == std::vector<std::string>{"console: x"});
    auto got = scan.feed("-42", &marker, true);
    BOOST_REQUIRE(got.has_value());
    BOOST_TEST(*got == "stream-marker-42");
    BOOST_TEST((echoed == std::vector<std::string>{"console: x", "console: stream-marker-42"}));
    // Not echoed when only complete lines are asked for.
    echoed.clear();
    console_scan lines([&](std::string_view l) { echoed.emplace_back(l); });
    BOOST_TEST(!lines.feed("stream-marker-42", &marker, false).has_value());
    BOOST_TEST(echoed.empty());
}

BOOST_AUTO_TEST_CASE(the_tail_keeps_the_last_non_blank_lines) {
    console_scan scan({}, 2);
    BOOST_TEST(scan.tail() == "");
    scan.feed("a\n\nb\n \nc\n", nullptr, false);
    BOOST_TEST(scan.tail() == "b\nc");
}
