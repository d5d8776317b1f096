// console::line_splitter: lines out of bytes fed in any split.
#define BOOST_TEST_MODULE console_lines
#include <localvm/console/lines.hpp>

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

using localvm::console::line_splitter;

namespace {

// Feeds `data` in pieces cut at `cut` (0: whole).
std::vector<std::string> split(const std::string& data, std::size_t cut, line_splitter& s) {
    std::vector<std::string> out;
    if (cut == 0) {
        s.feed(data, out);
        return out;
    }
    s.feed(std::string_view(data).substr(0, cut), out);
    s.feed(std::string_view(data).substr(cut), out);
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(lines_are_the_same_at_every_split) {
    const std::string data = "Booting\r\n\x1b[1mbold\x1b[0m line\n\nlogin: ";
    for (std::size_t cut = 0; cut <= data.size(); ++cut) {
        line_splitter s;
        auto lines = split(data, cut, s);
        BOOST_TEST_CONTEXT("cut at " << cut) {
            BOOST_TEST(lines.size() == 3u);
            if (lines.size() == 3u) {
                BOOST_TEST(lines[0] == "Booting");
                BOOST_TEST(lines[1] == "bold line");
                BOOST_TEST(lines[2] == "");
            }
            BOOST_TEST(s.partial_line() == "login: ");
            BOOST_TEST(s.latest_line() == "login: ");
        }
    }
}

BOOST_AUTO_TEST_CASE(latest_line_skips_blank_ones) {
    line_splitter s;
    std::vector<std::string> out;
    s.feed("first\n  \n", out);
    BOOST_TEST(out.size() == 2u);
    BOOST_TEST(s.latest_line() == "first");
    BOOST_TEST(s.partial_line() == "");
    s.feed("half", out);
    BOOST_TEST(s.latest_line() == "half");
    s.drop_partial();
    BOOST_TEST(s.partial_line() == "");
    BOOST_TEST(s.latest_line() == "first");
}

BOOST_AUTO_TEST_CASE(a_long_line_is_cut_into_pieces) {
    line_splitter s;
    std::vector<std::string> out;
    const std::string longer(line_splitter::max_line_length + 10, 'x');
    s.feed(longer, out);
    BOOST_TEST(out.size() == 1u);
    BOOST_TEST(out[0].size() == line_splitter::max_line_length);
    s.feed("\n", out);
    BOOST_TEST(out.size() == 2u);
    BOOST_TEST(out[1] == std::string(10, 'x'));
}
