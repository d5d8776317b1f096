// The QEMU backend against what it must not trust: directories another user
// made or linked first, things planted in the VM's directories, a runtime
// directory wiped under a running QEMU, base images that name host files,
// and a disk too full for the UEFI variable store.
#define BOOST_TEST_MODULE qemu_trust
#include <localvm/process/detached.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>

#include "common.hpp"
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using localvm::errc;
using lvtest::slurp;
using namespace std::chrono_literals;

namespace {

constexpr uid_t nobody = 65534;

// Runs qemu-img with these arguments (no braced list in a co_await:
// GCC 12 miscompiles a braced temporary in a coroutine).
template <class... Args> asio::awaitable<localvm::process::result> qemu_img(const Args&... args) {
    localvm::process::options o;
    o.argv = {"qemu-img", std::string(args)...};
    return localvm::process::run_checked(o);
}

using lvtest::expect_error;
using lvtest::make_base;

bool contains(const std::string& s, const std::string& needle) {
    return s.find(needle) != std::string::npos;
}

mode_t mode_of(const fs::path& p) {
    struct ::stat st {};
    BOOST_REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

// A directory of someone else's files that a planted link points at.
struct victim {
    fs::path dir;
    explicit victim(const fs::path& d)
        : dir(d) {
        fs::create_directory(dir);
        ::chmod(dir.c_str(), 0755);
        std::ofstream(dir / "keep") << "precious";
    }
    void check_untouched() const {
        BOOST_TEST(mode_of(dir) == 0755u);
        BOOST_TEST(slurp(dir / "keep") == "precious");
        std::vector<fs::path> entries;
        for (const auto& e : fs::directory_iterator(dir))
            entries.push_back(e.path().filename());
        BOOST_TEST(entries == std::vector<fs::path>{"keep"});
    }
};

} // namespace

using lvtest::leak_check;
BOOST_TEST_GLOBAL_FIXTURE(leak_check);

BOOST_AUTO_TEST_CASE(directories_of_others_and_links_are_refused) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();

            // A runtime directory made first, open to everyone (as another
            // user could make /tmp/localvm-<uid>).
            fs::create_directory(o.runtime_dir);
            ::chmod(o.runtime_dir.c_str(), 0777);
            localvm::qemu::manager m(ex, o);
            auto why = co_await expect_error(errc::unsupported, [&] { return m.create(h.base); });
            BOOST_TEST(contains(why, o.runtime_dir.string() + " is not the caller's own"), why);
            BOOST_TEST(contains(why, "mode 0777"), why);
            BOOST_TEST(!fs::exists(o.runtime_dir / "vm"));
            BOOST_TEST(!co_await m.exists());

            // Owned by another user.
            ::chmod(o.runtime_dir.c_str(), 0700);
            BOOST_REQUIRE(::chown(o.runtime_dir.c_str(), nobody, nobody) == 0);
            why = co_await expect_error(errc::unsupported, [&] { return m.create(h.base); });
            BOOST_TEST(contains(why, "uid 65534"), why);
            BOOST_TEST(!fs::exists(o.runtime_dir / "vm"));

            // A symbolic link in place of the runtime directory.
            victim v(h.root / "victim");
            fs::remove(o.runtime_dir);
            fs::create_directory_symlink(v.dir, o.runtime_dir);
            why = co_await expect_error(errc::unsupported, [&] { return m.create(h.base); });
            BOOST_TEST(contains(why, o.runtime_dir.string() + " is a symbolic link"), why);
            v.check_untouched();

            // In place of <runtime>/<name> and of <data>/<name>, on a VM that exists.
            fs::remove(o.runtime_dir);
            co_await m.create(h.base);
            BOOST_TEST(mode_of(m.files().data) == 0700u);
            BOOST_TEST(mode_of(m.files().runtime) == 0700u);
            BOOST_TEST(mode_of(m.files().disk) == 0600u);
            fs::remove_all(m.files().runtime);
            fs::create_directory_symlink(v.dir, m.files().runtime);
            why = co_await expect_error(errc::unsupported, [&] { return m.start(lvtest::small_vm()); });
            BOOST_TEST(contains(why, m.files().runtime.string() + " is a symbolic link"), why);
            why = co_await expect_error(errc::unsupported, [&] { return m.stop(); });
            why = co_await expect_error(errc::unsupported, [&] { return m.remove(); });
            BOOST_TEST(contains(why, "symbolic link"), why);
            v.check_untouched();
            BOOST_TEST(co_await m.exists()); // remove refused before deleting anything
            fs::remove(m.files().runtime);

            auto data = m.files().data;
            auto moved = h.root / "vm-data";
            fs::rename(data, moved);
            fs::create_directory_symlink(moved, data);
            why = co_await expect_error(errc::unsupported, [&] { return m.remove(); });
            BOOST_TEST(contains(why, data.string() + " is a symbolic link"), why);
            BOOST_TEST(fs::exists(moved / "disk.qcow2"));
            fs::remove(data);
            fs::rename(moved, data);
            co_await m.remove();
            BOOST_TEST(!co_await m.exists());
        },
        60s);
}

BOOST_AUTO_TEST_CASE(a_fifo_at_the_pid_file_is_refused_not_waited_on) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            BOOST_REQUIRE(::mkfifo(m.files().pidfile.c_str(), 0600) == 0);
            // Opening a FIFO for reading blocks until a writer comes: each
            // call would hang (the test's deadline) instead of answering.
            auto why = co_await expect_error(errc::unsupported, [&] { return m.running(); });
            BOOST_TEST(contains(why, m.files().pidfile.string() + " is not a regular file"), why);
            why = co_await expect_error(errc::unsupported, [&] { return m.start(lvtest::small_vm()); });
            BOOST_TEST(contains(why, "qemu.pid"), why);
            why = co_await expect_error(errc::unsupported, [&] { return m.stop(); });
            BOOST_TEST(fs::is_fifo(m.files().pidfile));
            fs::remove(m.files().pidfile);
            BOOST_TEST(!co_await m.running());
            co_await m.remove();
        },
        30s);
}

BOOST_AUTO_TEST_CASE(remove_refuses_while_qemu_holds_the_disk) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            localvm::qemu::manager m(ex, h.options());
            co_await m.create(h.base);
            co_await m.start(lvtest::small_vm());
            auto pid = co_await m.pid();
            BOOST_REQUIRE(pid);
            // logind removes /run/user/<uid> at the last logout: pid file,
            // sockets, state, all gone while QEMU runs on.
            fs::remove_all(m.files().runtime);
            BOOST_TEST(localvm::process::alive(*pid));
            auto why = co_await expect_error(errc::already_running, [&] { return m.remove(); });
            BOOST_TEST(contains(why, m.files().disk.string()), why);
            BOOST_TEST(co_await m.exists());
            BOOST_TEST(fs::exists(m.files().disk));
            // That QEMU can only be killed now; then remove goes ahead.
            ::kill(*pid, SIGKILL);
            BOOST_TEST(co_await localvm::process::wait_exit(*pid, 10000ms));
            co_await m.remove();
            BOOST_TEST(!fs::exists(m.files().data));
        },
        120s);
}

BOOST_AUTO_TEST_CASE(base_images_naming_host_files_are_refused) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            // A host "secret" the crafted images point at.
            auto secret = h.root / "id_ed25519";
            {
                std::ofstream f(secret, std::ios::binary);
                f << "-----BEGIN OPENSSH PRIVATE KEY-----\n" << std::string(4096, 'k');
            }
            auto backed = h.root / "backed.qcow2";
            co_await qemu_img("create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret.string(),
                              backed.string(), "1M");
            auto with_data = h.root / "data-file.qcow2";
            co_await qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=" + secret.string(),
                              with_data.string(), "1M");
            auto flat = h.root / "flat.vmdk";
            co_await qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat",
                              flat.string(), "1M");

            localvm::qemu::manager m(ex, h.options());
            for (const auto& [image, named] :
                 {std::pair{backed, "backing file " + secret.string()},
                  std::pair{with_data, "data file " + secret.string()},
                  std::pair{flat, "extent " + (h.root / "flat-flat.vmdk").string()}}) {
                auto why = co_await expect_error(errc::unsupported, [&] { return m.create(image); });
                BOOST_TEST(contains(why, named), why);
                BOOST_TEST(contains(why, "allow_base_backing_chain"), why);
                BOOST_TEST(!co_await m.exists());
                BOOST_TEST(!fs::exists(m.files().disk.string() + ".tmp-create"));
            }

            // Allowed on purpose: the chain is built.
            auto o = h.options("chained");
            o.allow_base_backing_chain = true;
            localvm::qemu::manager chained(ex, o);
            co_await chained.create(backed);
            BOOST_TEST(co_await chained.exists());
            co_await chained.remove();
        },
        60s);
}

BOOST_AUTO_TEST_CASE(qemu_img_reads_the_base_under_limits) {
    lvtest::vm_home h;
    // A qemu-img that notes the limits it runs under, then does its job.
    auto fake = h.root / "qemu-img";
    auto noted = h.root / "limits";
    {
        std::ofstream f(fake);
        f << "#!/bin/sh\nif [ \"$1\" = info ]; then { ulimit -v; ulimit -t; } > " << noted.string()
          << "; fi\nexec qemu-img \"$@\"\n";
    }
    fs::permissions(fake, fs::perms(0755));
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            auto o = h.options();
            o.qemu_img = fake;
            localvm::qemu::manager m(ex, o);
            co_await m.create(h.base);
            BOOST_TEST(slurp(noted) == "1048576\n30\n"); // KiB of address space, CPU seconds
            co_await m.remove();
        },
        60s);
}

BOOST_AUTO_TEST_CASE(the_uefi_variable_store_is_copied_whole_or_not_at_all) {
    lvtest::vm_home h;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            co_await make_base(h);
            // Room for the overlay (about 200 KiB) but not for the store (540 KiB).
            auto full = h.root / "full";
            fs::create_directories(full);
            BOOST_REQUIRE(::mount("tmpfs", full.c_str(), "tmpfs", 0, "size=400k,mode=0700") == 0);
            auto o = h.options();
            o.data_dir = full;
            localvm::qemu::manager m(ex, o);
            co_await m.create(h.base);
            auto why =
                co_await expect_error(errc::io_error, [&] { return m.start(lvtest::small_vm()); });
            BOOST_TEST(contains(why, "efi-vars.fd"), why);
            BOOST_TEST(!co_await m.running());
            // No store cut short for the next start to trip over, no temporary file.
            std::vector<fs::path> left;
            for (const auto& e : fs::directory_iterator(m.files().data))
                left.push_back(e.path().filename());
            BOOST_TEST(left == std::vector<fs::path>{"disk.qcow2"});
            ::umount(full.c_str());
        },
        60s);
}
