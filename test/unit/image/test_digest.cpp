// Digest specs, and the EVP hasher against known answers.
#define BOOST_TEST_MODULE image_digest
#include <localvm/image/digest.hpp>

#include <boost/test/unit_test.hpp>

using namespace localvm::image;

namespace {
const std::string abc256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string abc512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                           "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
} // namespace

BOOST_AUTO_TEST_CASE(parses_specs) {
    std::string problem;
    auto a = parse_digest("sha256:" + abc256, problem);
    BOOST_REQUIRE(a);
    BOOST_TEST((a->algorithm == digest_algorithm::sha256));
    BOOST_TEST(a->text() == "sha256:" + abc256);
    std::string upper = abc512;
    for (auto& c : upper)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    auto b = parse_digest("SHA512:" + upper, problem);
    BOOST_REQUIRE(b);
    BOOST_TEST(b->hex == abc512); // stored lower-case
    auto c = parse_digest(digest_algorithm::sha512, abc512, problem);
    BOOST_REQUIRE(c);
    BOOST_TEST((*c == *b));
}

BOOST_AUTO_TEST_CASE(refuses_bad_specs) {
    std::string problem;
    BOOST_TEST(!parse_digest(abc256, problem));
    BOOST_TEST(problem.find("ALGORITHM:HEX") != std::string::npos);
    BOOST_TEST(!parse_digest("md5:" + abc256, problem));
    BOOST_TEST(problem.find("unknown digest algorithm \"md5\"") != std::string::npos);
    BOOST_TEST(!parse_digest("sha256:" + abc512, problem));
    BOOST_TEST(problem.find("64 hex digits, got 128") != std::string::npos);
    BOOST_TEST(!parse_digest("sha512:" + abc256, problem));
    BOOST_TEST(problem.find("128 hex digits, got 64") != std::string::npos);
    BOOST_TEST(!parse_digest("sha256:" + abc256.substr(1) + "g", problem));
    BOOST_TEST(problem.find("non-hex character 'g'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(hashes_known_answers_in_any_split) {
    hasher h256(digest_algorithm::sha256);
    h256.update("abc");
    BOOST_TEST(h256.finish().hex == abc256);
    hasher h512(digest_algorithm::sha512);
    h512.update("a");
    h512.update("");
    h512.update("bc");
    BOOST_TEST(h512.finish().hex == abc512);
    // finish starts over; reset forgets.
    h512.update("abc");
    BOOST_TEST(h512.finish().hex == abc512);
    h256.update("junk");
    h256.reset();
    h256.update("abc");
    BOOST_TEST(h256.finish().text() == "sha256:" + abc256);
}
