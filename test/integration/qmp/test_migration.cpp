#define BOOST_TEST_MODULE qmp_migration
// Migration to and from a file descriptor (getfd over SCM_RIGHTS) between
// two real, paused QEMUs (TCG, no guest, no NIC).
#include <localvm/error.hpp>
#include <localvm/qmp/client.hpp>
#include <localvm/qmp/migration.hpp>
#include <localvm/testing/run.hpp>

#include <boost/test/unit_test.hpp>

#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

#include "qemu_process.hpp"

namespace asio = boost::asio;
namespace qmp = localvm::qmp;
namespace fs = std::filesystem;
using localvm::errc;
using namespace std::chrono_literals;

namespace {

void run(std::function<asio::awaitable<void>()> body) {
    localvm::testing::run_coroutine(std::move(body), 120s);
}

struct temp_file {
    fs::path path = fs::temp_directory_path() /
                    ("localvm-migration-" + std::to_string(::getpid()) + ".state");
    ~temp_file() {
        std::error_code ec;
        fs::remove(path, ec);
    }
};

} // namespace

BOOST_AUTO_TEST_CASE(save_to_a_file_and_load_it_into_another_qemu) {
    run([]() -> asio::awaitable<void> {
        temp_file state;
        std::vector<std::string> machine = {"-machine", "q35", "-m", "64"};
        localvm::test::qemu_process source(1, machine);
        co_await source.wait_for_socket(20s);
        auto c = co_await qmp::client::connect(source.socket());
        int fd = ::open(state.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        BOOST_REQUIRE(fd >= 0);
        auto info = co_await qmp::migrate_to_fd(c, fd);
        ::close(fd); // QEMU has its own copy, closed when it finished
        BOOST_TEST(info.status == "completed");
        BOOST_TEST(info.ram_transferred > 0u);
        BOOST_TEST(fs::file_size(state.path) > 0u);
        // A completed source stays paused, and runs again on cont.
        BOOST_TEST(!(co_await c.query_status()).running);
        co_await c.cont();
        BOOST_TEST((co_await c.query_status()).running);

        auto incoming = machine;
        incoming.insert(incoming.end(), {"-incoming", "defer"});
        localvm::test::qemu_process target(1, incoming);
        co_await target.wait_for_socket(20s);
        auto t = co_await qmp::client::connect(target.socket());
        BOOST_TEST((co_await t.query_status()).status == "inmigrate");
        int in = ::open(state.path.c_str(), O_RDONLY | O_CLOEXEC);
        BOOST_REQUIRE(in >= 0);
        co_await qmp::migrate_from_fd(t, in);
        ::close(in);
        auto st = co_await t.query_status();
        BOOST_TEST(!st.running, st.status); // -S: loaded, waiting for cont
        co_await t.cont();
        BOOST_TEST((co_await t.query_status()).running);
    });
}

BOOST_AUTO_TEST_CASE(a_full_disk_fails_the_migration_and_the_guest_goes_on) {
    run([]() -> asio::awaitable<void> {
        localvm::test::qemu_process source(1, {"-m", "64"});
        co_await source.wait_for_socket(20s);
        auto c = co_await qmp::client::connect(source.socket());
        co_await c.cont();
        int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
        BOOST_REQUIRE(fd >= 0);
        try {
            co_await qmp::migrate_to_fd(c, fd);
            BOOST_FAIL("migration to /dev/full succeeded");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == make_error_code(errc::process_failed));
            BOOST_TEST(std::string(e.what()).find("failed") != std::string::npos, e.what());
        }
        ::close(fd);
        // A running guest that failed to migrate runs on.
        BOOST_TEST((co_await c.query_status()).running);
    });
}

BOOST_AUTO_TEST_CASE(loading_garbage_is_an_error_not_a_hang) {
    run([]() -> asio::awaitable<void> {
        temp_file state;
        {
            int fd = ::open(state.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            BOOST_REQUIRE(::write(fd, "not a migration stream\n", 23) == 23);
            ::close(fd);
        }
        localvm::test::qemu_process target(1, {"-m", "64", "-incoming", "defer"});
        co_await target.wait_for_socket(20s);
        auto t = co_await qmp::client::connect(target.socket());
        int in = ::open(state.path.c_str(), O_RDONLY | O_CLOEXEC);
        try {
            co_await qmp::migrate_from_fd(t, in);
            BOOST_FAIL("loading garbage succeeded");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == make_error_code(errc::process_failed), e.what());
        }
        ::close(in);
    });
}
