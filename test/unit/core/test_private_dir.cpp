// The directories localvm keeps state in are the caller's own or refused,
// and whole-file writes neither follow links nor leak their fd to children.
#define BOOST_TEST_MODULE private_dir
#include <localvm/atomic_file.hpp>
#include <localvm/error.hpp>

#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>

#include "sys/secure_dir.hpp"
#include "../../common/proc_util.hpp"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using localvm::errc;

namespace {

constexpr uid_t nobody = 65534;

struct scratch {
    fs::path root;
    scratch() {
        char tmpl[] = "/tmp/lv-privdir-XXXXXX";
        BOOST_REQUIRE(::mkdtemp(tmpl));
        root = tmpl;
    }
    ~scratch() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
};

mode_t mode_of(const fs::path& p) {
    struct ::stat st {};
    BOOST_REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Runs ensure_private_dir and returns the refusal's text ("" when accepted).
std::string refusal(const fs::path& top, const fs::path& dir) {
    try {
        localvm::sys::ensure_private_dir(top, dir, "runtime directory");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == errc::unsupported, e.what());
        return e.what();
    }
    return {};
}

bool contains(const std::string& s, const std::string& needle) {
    return s.find(needle) != std::string::npos;
}

} // namespace

BOOST_AUTO_TEST_CASE(missing_levels_are_made_0700) {
    scratch s;
    auto top = s.root / "a" / "localvm";
    ::umask(022);
    BOOST_TEST(refusal(top, top / "vm") == "");
    BOOST_TEST(mode_of(s.root / "a") == 0700u);
    BOOST_TEST(mode_of(top) == 0700u);
    BOOST_TEST(mode_of(top / "vm") == 0700u);
    BOOST_TEST(refusal(top, top / "vm") == ""); // again: nothing to do
}

BOOST_AUTO_TEST_CASE(a_world_writable_directory_is_refused) {
    scratch s;
    auto top = s.root / "localvm";
    fs::create_directory(top);
    ::chmod(top.c_str(), 0777);
    auto why = refusal(top, top / "vm");
    BOOST_TEST(contains(why, top.string()), why);
    BOOST_TEST(contains(why, "mode 0777"), why);
    BOOST_TEST(!fs::exists(top / "vm"));

    // The VM's own directory may not even be sticky.
    ::chmod(top.c_str(), 0700);
    fs::create_directory(top / "vm");
    ::chmod((top / "vm").c_str(), 01777);
    why = refusal(top, top / "vm");
    BOOST_TEST(contains(why, "mode 1777"), why);
}

BOOST_AUTO_TEST_CASE(a_directory_of_another_user_is_refused) {
    BOOST_REQUIRE(::geteuid() == 0); // the suite runs as root; chown needs it
    scratch s;
    auto top = s.root / "localvm";
    fs::create_directory(top);
    ::chmod(top.c_str(), 0700);
    BOOST_REQUIRE(::chown(top.c_str(), nobody, nobody) == 0);
    auto why = refusal(top, top / "vm");
    BOOST_TEST(contains(why, "uid 65534"), why);
    BOOST_TEST(contains(why, "mode 0700"), why);
    BOOST_TEST(!fs::exists(top / "vm"));

    // One level down, the same.
    BOOST_REQUIRE(::chown(top.c_str(), 0, 0) == 0);
    fs::create_directory(top / "vm");
    BOOST_REQUIRE(::chown((top / "vm").c_str(), nobody, nobody) == 0);
    why = refusal(top, top / "vm");
    BOOST_TEST(contains(why, (top / "vm").string() + " is not the caller's own"), why);
    BOOST_TEST(contains(why, "uid 65534"), why);
}

BOOST_AUTO_TEST_CASE(a_symlink_in_place_of_a_level_is_refused_and_its_target_untouched) {
    scratch s;
    auto victim = s.root / "victim";
    fs::create_directory(victim);
    ::chmod(victim.c_str(), 0755);
    { std::ofstream(victim / "keep") << "precious"; }

    // In place of the top directory (/tmp/localvm-<uid> made first by someone).
    auto top = s.root / "localvm";
    fs::create_directory_symlink(victim, top);
    auto why = refusal(top, top / "vm");
    BOOST_TEST(contains(why, "is a symbolic link"), why);
    BOOST_TEST(contains(why, victim.string()), why);
    // In place of <name>.
    fs::remove(top);
    fs::create_directory(top);
    fs::create_directory_symlink(victim, top / "vm");
    why = refusal(top, top / "vm");
    BOOST_TEST(contains(why, (top / "vm").string() + " is a symbolic link"), why);
    // A dangling one, too: nothing is created where it points.
    fs::remove(top / "vm");
    fs::create_directory_symlink(s.root / "nowhere", top / "vm");
    why = refusal(top, top / "vm");
    BOOST_TEST(contains(why, "symbolic link"), why);
    BOOST_TEST(!fs::exists(s.root / "nowhere"));

    BOOST_TEST(mode_of(victim) == 0755u);
    BOOST_TEST(slurp(victim / "keep") == "precious");
    BOOST_TEST(std::distance(fs::directory_iterator(victim), fs::directory_iterator()) == 1);
}

BOOST_AUTO_TEST_CASE(a_file_or_fifo_in_place_of_a_level_is_refused) {
    scratch s;
    auto top = s.root / "localvm";
    BOOST_REQUIRE(::mkfifo(top.c_str(), 0600) == 0);
    auto why = refusal(top, top / "vm"); // must not block on the FIFO
    BOOST_TEST(contains(why, "is a FIFO"), why);
    fs::remove(top);
    fs::create_directory(top);
    { std::ofstream(top / "vm") << "x"; }
    why = refusal(top, top / "vm");
    BOOST_TEST(contains(why, "is a regular file"), why);
}

BOOST_AUTO_TEST_CASE(an_older_readable_vm_directory_is_tightened_and_a_sticky_top_passes) {
    scratch s;
    auto top = s.root / "localvm";
    fs::create_directory(top);
    ::chmod(top.c_str(), 01777); // a tmpfs mount's root
    fs::create_directory(top / "vm");
    ::chmod((top / "vm").c_str(), 0755);
    BOOST_TEST(refusal(top, top / "vm") == "");
    BOOST_TEST(mode_of(top / "vm") == 0700u);
    BOOST_TEST(mode_of(top) == 01777u); // not ours to change
    // A group-writable VM directory is not tightened but refused: others
    // may have planted something in it already.
    ::chmod((top / "vm").c_str(), 0770);
    BOOST_TEST(contains(refusal(top, top / "vm"), "mode 0770"));
}

BOOST_AUTO_TEST_CASE(atomic_write_replaces_a_symlink_without_following_it) {
    scratch s;
    auto victim = s.root / "victim";
    { std::ofstream(victim) << "precious"; }
    auto state = s.root / "state.json";
    fs::create_symlink(victim, state);
    localvm::write_file_atomic(state, "{}", fs::perms(0600));
    BOOST_TEST(!fs::is_symlink(state));
    BOOST_TEST(slurp(state) == "{}");
    BOOST_TEST(slurp(victim) == "precious");
}

BOOST_AUTO_TEST_CASE(atomic_write_keeps_its_temp_fd_from_children) {
    scratch s;
    auto target = s.root / "seed.iso";
    int checked = 0;
    localvm::write_file_atomic(target, [&](const localvm::byte_writer& write) {
        write("x");
        // Find the temporary file's fd: a child exec'd now must not inherit it.
        for (const auto& [fd, link] : proc_util::fd_targets(::getpid())) {
            if (!fs::path(link).filename().string().starts_with("seed.iso.tmp-"))
                continue;
            BOOST_TEST((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, link << " is inheritable");
            ++checked;
        }
    });
    BOOST_TEST(checked == 1);
    BOOST_TEST(slurp(target) == "x");
}
