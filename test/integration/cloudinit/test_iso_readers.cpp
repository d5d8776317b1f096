// Independent ISO9660 readers agree with the writer: isoinfo (Rock Ridge and
// Joliet), xorriso, bsdtar and blkid each list or extract every file, byte
// for byte. Each meson test runs one reader's suite; it exits 77 (skip) only
// when that reader is not installed (LOCALVM_REQUIRE_TOOL names it).
#define BOOST_TEST_MODULE iso_readers
#define BOOST_TEST_NO_MAIN
#include <localvm/cloudinit/iso9660.hpp>
#include <localvm/cloudinit/nocloud.hpp>

#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <unistd.h>

using namespace localvm::cloudinit;
namespace fs = std::filesystem;

namespace {

std::string pseudo_random(std::size_t n, std::uint64_t seed) {
    std::string s(n, '\0');
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (auto& c : s) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        c = static_cast<char>(x >> 56);
    }
    return s;
}

std::vector<iso_file> sized_files() {
    const std::pair<const char*, std::size_t> sizes[] = {
        {"empty", 0},          {"one-byte", 1},
        {"size-2047", 2047},   {"size-2048", 2048},
        {"size-2049", 2049},   {"one-mib", 1 << 20},
        {"ten-mib", 10 << 20}, {"Mixed.Case Name.txt", 100}};
    std::vector<iso_file> files;
    std::uint64_t k = 1;
    for (auto [name, size] : sizes)
        files.push_back({name, pseudo_random(size, k++)});
    // The seed itself, with real contents.
    seed s;
    s.user_data = "#cloud-config\npassword: x\n";
    s.meta = {"iid-readers", "vm1", {"ssh-ed25519 AAAA k@h"}};
    s.network_config = std::string(default_network_config());
    s.vendor_data = "#cloud-config\n";
    for (auto& f : seed_files(s))
        files.push_back(std::move(f));
    return files;
}

std::vector<iso_file> many_files() {
    std::vector<iso_file> files;
    for (int i = 0; i < 70; ++i)
        files.push_back({"many-file-" + std::to_string(i), pseudo_random(i * 37, 1000 + i)});
    return files;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Runs a shell command (all paths are our own temp names), returns stdout.
std::string run(const std::string& cmd, int expect_status = 0) {
    FILE* p = ::popen(cmd.c_str(), "r");
    BOOST_TEST_REQUIRE(p != nullptr);
    std::string out;
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
        out.append(buf, n);
    const int status = ::pclose(p);
    BOOST_TEST(WEXITSTATUS(status) == expect_status, cmd);
    return out;
}

struct image_fixture {
    fs::path dir;
    image_fixture() {
        std::string t = (fs::temp_directory_path() / "localvm-iso-XXXXXX").string();
        BOOST_TEST_REQUIRE(::mkdtemp(t.data()) != nullptr);
        dir = t;
    }
    ~image_fixture() {
        std::system(("chmod -R u+w " + dir.string() + " 2>/dev/null").c_str());
        fs::remove_all(dir);
    }
    fs::path write(const std::string& name, const std::vector<iso_file>& files) {
        const auto p = dir / name;
        write_iso_file(p, files);
        return p;
    }
    fs::path fresh_dir(const std::string& name) {
        const auto p = dir / name;
        fs::create_directory(p);
        return p;
    }
};

void expect_tree(const fs::path& root, const std::vector<iso_file>& files) {
    std::map<std::string, const iso_file*> want;
    for (const auto& f : files)
        want[f.name] = &f;
    std::size_t seen = 0;
    for (const auto& e : fs::directory_iterator(root)) {
        const auto name = e.path().filename().string();
        BOOST_TEST_CONTEXT(name) {
            BOOST_TEST_REQUIRE(want.count(name) == 1u, "unexpected file " << name);
            BOOST_TEST(e.is_regular_file());
            BOOST_TEST((slurp(e.path()) == want[name]->contents), "contents differ: " << name);
            ++seen;
        }
    }
    BOOST_TEST(seen == files.size());
}

void each_image(image_fixture& fx,
                const std::function<void(const fs::path&, const std::vector<iso_file>&)>& check) {
    const auto sized = sized_files();
    check(fx.write("sized.iso", sized), sized);
    const auto many = many_files();
    check(fx.write("many.iso", many), many);
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(isoinfo, image_fixture)

BOOST_AUTO_TEST_CASE(rock_ridge_lists_and_extracts) {
    each_image(*this, [&](const fs::path& img, const std::vector<iso_file>& files) {
        const auto listing = run("isoinfo -R -l -i " + img.string());
        const auto paths = run("isoinfo -R -f -i " + img.string());
        for (const auto& f : files) {
            BOOST_TEST(paths.find("/" + f.name + "\n") != std::string::npos, f.name);
            BOOST_TEST(listing.find("-r--r--r--") != std::string::npos);
            const auto out = dir / "out";
            run("isoinfo -R -i " + img.string() + " -x '/" + f.name + "' > " + out.string());
            BOOST_TEST((slurp(out) == f.contents), "isoinfo -R -x " << f.name);
        }
        BOOST_TEST(listing.find("dr-xr-xr-x") != std::string::npos);
        BOOST_TEST(
            run("isoinfo -d -i " + img.string()).find("Rock Ridge signatures version 1 found") !=
            std::string::npos);
    });
}

BOOST_AUTO_TEST_CASE(joliet_lists_and_extracts) {
    each_image(*this, [&](const fs::path& img, const std::vector<iso_file>& files) {
        const auto paths = run("isoinfo -J -f -i " + img.string());
        for (const auto& f : files) {
            BOOST_TEST(paths.find("/" + f.name + "\n") != std::string::npos, f.name);
            const auto out = dir / "out";
            run("isoinfo -J -i " + img.string() + " -x '/" + f.name + "' > " + out.string());
            BOOST_TEST((slurp(out) == f.contents), "isoinfo -J -x " << f.name);
        }
        BOOST_TEST(run("isoinfo -d -i " + img.string()).find("Joliet with UCS level 3 found") !=
                   std::string::npos);
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(xorriso, image_fixture)

BOOST_AUTO_TEST_CASE(lists_and_extracts) {
    int n = 0;
    each_image(*this, [&](const fs::path& img, const std::vector<iso_file>& files) {
        const auto listing =
            run("xorriso -indev " + img.string() + " -pvd_info -find / -type f 2>&1");
        BOOST_TEST(listing.find("Volume Id    : cidata") != std::string::npos);
        for (const auto& f : files)
            BOOST_TEST(listing.find("'/" + f.name + "'\n") != std::string::npos, f.name);
        for (const char* bad : {"SORRY", "FAILURE", "WARNING", "MISHAP"})
            BOOST_TEST(listing.find(bad) == std::string::npos, listing);
        const auto out = dir / ("x" + std::to_string(n++));
        const auto log = run("xorriso -osirrox on -indev " + img.string() + " -extract / " +
                             out.string() + " 2>&1");
        for (const char* bad : {"SORRY", "FAILURE", "WARNING", "MISHAP"})
            BOOST_TEST(log.find(bad) == std::string::npos, log);
        expect_tree(out, files);
        BOOST_TEST((fs::status(out / files[0].name).permissions() == fs::perms(0444)));
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(bsdtar, image_fixture)

BOOST_AUTO_TEST_CASE(extracts) {
    int n = 0;
    each_image(*this, [&](const fs::path& img, const std::vector<iso_file>& files) {
        const auto out = fresh_dir("x" + std::to_string(n++));
        const auto log = run("bsdtar -xf " + img.string() + " -C " + out.string() + " 2>&1");
        BOOST_TEST(log.empty(), log);
        expect_tree(out, files);
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(blkid, image_fixture)

BOOST_AUTO_TEST_CASE(reports_label_and_type) {
    each_image(*this, [&](const fs::path& img, const std::vector<iso_file>&) {
        const auto out = run("blkid -p -o export " + img.string());
        BOOST_TEST(out.find("\nLABEL=cidata\n") != std::string::npos, out);
        BOOST_TEST(out.find("\nTYPE=iso9660\n") != std::string::npos, out);
    });
}

BOOST_AUTO_TEST_SUITE_END()

namespace {
bool on_path(const std::string& tool) {
    const char* path = std::getenv("PATH");
    std::stringstream ss(path ? path : "");
    for (std::string d; std::getline(ss, d, ':');)
        if (!d.empty() && ::access((fs::path(d) / tool).c_str(), X_OK) == 0)
            return true;
    return false;
}
} // namespace

int main(int argc, char* argv[]) {
    // blkid lives in /usr/sbin, which a non-root PATH may lack.
    const char* path = std::getenv("PATH");
    ::setenv("PATH", (std::string(path ? path : "/usr/bin:/bin") + ":/usr/sbin:/sbin").c_str(), 1);
    if (const char* tool = std::getenv("LOCALVM_REQUIRE_TOOL"); tool && !on_path(tool)) {
        std::fprintf(stderr, "%s is not installed: skipping\n", tool);
        return 77;
    }
    return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
