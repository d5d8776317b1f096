// detail::next_code_point and detail::sequence_length (src/detail/utf8.hpp):
// the one strict UTF-8 decoder. Every scalar value round-trips; every
// malformed form (overlong, surrogate, above U+10FFFF, truncated, bad
// continuation) is refused without moving the position.
#define BOOST_TEST_MODULE utf8
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>

#include "detail/utf8.hpp"

using localvm::detail::next_code_point;
using localvm::detail::sequence_length;

namespace {

// The test's own encoder (the textbook table), for the round trip.
std::string encode(char32_t cp) {
    std::string s;
    auto c = [](unsigned v) {
        return static_cast<char>(v);
    };
    if (cp < 0x80) {
        s += c(cp);
    } else if (cp < 0x800) {
        s += c(0xC0 | (cp >> 6));
        s += c(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += c(0xE0 | (cp >> 12));
        s += c(0x80 | ((cp >> 6) & 0x3F));
        s += c(0x80 | (cp & 0x3F));
    } else {
        s += c(0xF0 | (cp >> 18));
        s += c(0x80 | ((cp >> 12) & 0x3F));
        s += c(0x80 | ((cp >> 6) & 0x3F));
        s += c(0x80 | (cp & 0x3F));
    }
    return s;
}

// Refused at offset 0, position unchanged, length 0.
bool refused(std::string_view bytes) {
    std::size_t pos = 0;
    const bool none = !next_code_point(bytes, pos);
    return none && pos == 0 && sequence_length(bytes, 0) == 0;
}

} // namespace

BOOST_AUTO_TEST_CASE(every_scalar_value_round_trips) {
    std::size_t checked = 0;
    for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        const auto s = encode(cp) + "z"; // something after: only the sequence is consumed
        std::size_t pos = 0;
        const auto got = next_code_point(s, pos);
        if (!got || *got != cp || pos != s.size() - 1 || sequence_length(s, 0) != pos) {
            BOOST_ERROR("U+" << std::hex << static_cast<unsigned>(cp) << " did not round-trip");
            break;
        }
        ++checked;
    }
    BOOST_TEST(checked == 0x110000u - 0x800u);
}

BOOST_AUTO_TEST_CASE(decodes_in_sequence_from_a_position) {
    const std::string s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    std::size_t pos = 0;
    BOOST_TEST(static_cast<unsigned>(*next_code_point(s, pos)) == 0x61u);
    BOOST_TEST(pos == 1u);
    BOOST_TEST(static_cast<unsigned>(*next_code_point(s, pos)) == 0xE9u);
    BOOST_TEST(pos == 3u);
    BOOST_TEST(static_cast<unsigned>(*next_code_point(s, pos)) == 0x20ACu);
    BOOST_TEST(pos == 6u);
    BOOST_TEST(static_cast<unsigned>(*next_code_point(s, pos)) == 0x1F600u);
    BOOST_TEST(pos == s.size());
    BOOST_TEST(sequence_length(s, 1) == 2u);
    BOOST_TEST(sequence_length(s, 2) == 0u); // a continuation byte cannot start one
}

BOOST_AUTO_TEST_CASE(overlong_forms_are_refused) {
    BOOST_TEST(refused("\xC0\x80"));          // U+0000 in two bytes
    BOOST_TEST(refused("\xC0\xAF"));          // '/' in two bytes
    BOOST_TEST(refused("\xC1\xBF"));          // U+007F in two bytes
    BOOST_TEST(refused("\xE0\x80\x80"));      // U+0000 in three
    BOOST_TEST(refused("\xE0\x9F\xBF"));      // U+07FF in three
    BOOST_TEST(refused("\xF0\x80\x80\x80"));  // U+0000 in four
    BOOST_TEST(refused("\xF0\x8F\xBF\xBF"));  // U+FFFF in four
    BOOST_TEST(!refused("\xE0\xA0\x80"));     // U+0800: the smallest three-byte form
    BOOST_TEST(!refused("\xF0\x90\x80\x80")); // U+10000: the smallest four-byte form
}

BOOST_AUTO_TEST_CASE(surrogates_are_refused) {
    BOOST_TEST(refused("\xED\xA0\x80"));             // U+D800
    BOOST_TEST(refused("\xED\xAF\xBF"));             // U+DBFF
    BOOST_TEST(refused("\xED\xB0\x80"));             // U+DC00
    BOOST_TEST(refused("\xED\xBF\xBF"));             // U+DFFF
    BOOST_TEST(refused("\xED\xA0\xBD\xED\xB8\x80")); // a CESU-8 pair
    BOOST_TEST(!refused("\xED\x9F\xBF"));            // U+D7FF
    BOOST_TEST(!refused("\xEE\x80\x80"));            // U+E000
}

BOOST_AUTO_TEST_CASE(values_above_u10ffff_are_refused) {
    BOOST_TEST(!refused("\xF4\x8F\xBF\xBF")); // U+10FFFF
    BOOST_TEST(refused("\xF4\x90\x80\x80"));  // U+110000
    BOOST_TEST(refused("\xF5\x80\x80\x80"));
    BOOST_TEST(refused("\xF7\xBF\xBF\xBF"));         // U+1FFFFF
    BOOST_TEST(refused("\xF8\x88\x80\x80\x80"));     // five-byte lead
    BOOST_TEST(refused("\xFC\x84\x80\x80\x80\x80")); // six-byte lead
    BOOST_TEST(refused("\xFE"));
    BOOST_TEST(refused("\xFF"));
}

BOOST_AUTO_TEST_CASE(truncated_sequences_are_refused) {
    BOOST_TEST(refused("\xC3"));
    BOOST_TEST(refused("\xE2\x82"));
    BOOST_TEST(refused("\xE2"));
    BOOST_TEST(refused("\xF0\x9F\x98"));
    BOOST_TEST(refused("\xF0\x9F"));
    // Truncated at the end of a longer text, from a later position.
    const std::string s = "ok\xF0\x9F\x98";
    std::size_t pos = 2;
    BOOST_TEST(!next_code_point(s, pos));
    BOOST_TEST(pos == 2u);
}

BOOST_AUTO_TEST_CASE(bad_continuation_bytes_are_refused) {
    BOOST_TEST(refused("\x80")); // a lone continuation byte
    BOOST_TEST(refused("\xBF"));
    BOOST_TEST(refused("\xC3\x28"));     // ASCII where a continuation must be
    BOOST_TEST(refused("\xC3\xC3\xA9")); // a lead where a continuation must be
    BOOST_TEST(refused("\xE2\x28\xA1"));
    BOOST_TEST(refused("\xE2\x82\x28"));
    BOOST_TEST(refused("\xF0\x9F\x98\x28"));
    // A NUL byte is a valid code point, not the end of the text.
    const std::string nul(1, '\0');
    std::size_t pos = 0;
    BOOST_TEST(static_cast<unsigned>(*next_code_point(nul, pos)) == 0u);
    BOOST_TEST(pos == 1u);
}
