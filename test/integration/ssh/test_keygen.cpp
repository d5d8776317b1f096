// ensure_key_pair with the real ssh-keygen: makes a pair once, keeps it,
// derives a lost .pub, reports a key it cannot read.
#define BOOST_TEST_MODULE ssh_keygen
#include <localvm/error.hpp>
#include <localvm/ssh/keygen.hpp>
#include <localvm/testing/run.hpp>

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>

#include <stdlib.h>
#include <sys/stat.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;

BOOST_AUTO_TEST_CASE(makes_keeps_and_derives) {
    char tmpl[] = "/tmp/lvkey-XXXXXX";
    fs::path root = ::mkdtemp(tmpl);
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        auto id = root / "new dir" / "id_ed25519";
        auto made = co_await localvm::ssh::ensure_key_pair(id, "me@test");
        BOOST_TEST(made.starts_with("ssh-ed25519 "), made);
        BOOST_TEST(made.ends_with(" me@test"), made);
        BOOST_TEST(fs::exists(id));
        auto mode = fs::status(id.parent_path()).permissions() & fs::perms::all;
        BOOST_TEST(static_cast<unsigned>(mode) == 0700u);

        auto again = co_await localvm::ssh::ensure_key_pair(id, "other");
        BOOST_TEST(again == made); // kept, not replaced

        fs::remove(id.string() + ".pub");
        auto derived = co_await localvm::ssh::ensure_key_pair(id, "other");
        // ssh-keygen -y gives the key without its comment.
        BOOST_TEST(made.starts_with(derived.substr(0, derived.find(' ', 12))), derived);
        BOOST_TEST(fs::exists(id.string() + ".pub"));

        auto bad = root / "bad";
        std::ofstream(bad) << "not a key\n";
        ::chmod(bad.c_str(), 0600);
        try {
            co_await localvm::ssh::ensure_key_pair(bad);
            BOOST_ERROR("a broken key was accepted");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::errc::process_failed, e.what());
        }
    });
    fs::remove_all(root);
}
