// meta-data rendering (the exact shape the test guest's shell parser reads),
// rejection of unrepresentable values, and the seed's file set.
#define BOOST_TEST_MODULE nocloud
#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/error.hpp>

#include "../../common/host_key.hpp"

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

using namespace localvm::cloudinit;
using localvm::errc;
namespace cloudinit = localvm::cloudinit;

namespace {

void expect_rejected(const meta_data& md, const std::string& needle) {
    BOOST_TEST_CONTEXT(needle) {
        try {
            render_meta_data(md);
            BOOST_ERROR("accepted");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
            BOOST_TEST(e.diagnostic().find(needle) != std::string::npos, e.diagnostic());
        }
    }
}

meta_data with_hostname(std::string h) {
    return {"iid-1", std::move(h), {}};
}

} // namespace

BOOST_AUTO_TEST_CASE(renders_the_fixed_shape) {
    const meta_data md{"iid-example", "vm1", {"ssh-ed25519 AAAA... user@host"}};
    BOOST_TEST(render_meta_data(md) == "instance-id: \"iid-example\"\n"
                                       "local-hostname: \"vm1\"\n"
                                       "public-keys:\n"
                                       "  - \"ssh-ed25519 AAAA... user@host\"\n");
    const meta_data two{"i", "h", {"k1", "k2"}};
    BOOST_TEST(render_meta_data(two) ==
               "instance-id: \"i\"\nlocal-hostname: \"h\"\npublic-keys:\n  - \"k1\"\n  - \"k2\"\n");
}

BOOST_AUTO_TEST_CASE(omits_empty_optional_keys) {
    BOOST_TEST(render_meta_data({"iid-1", "", {}}) == "instance-id: \"iid-1\"\n");
    BOOST_TEST(render_meta_data({"iid-1", "", {"k"}}) ==
               "instance-id: \"iid-1\"\npublic-keys:\n  - \"k\"\n");
}

BOOST_AUTO_TEST_CASE(escapes_only_quote_and_backslash) {
    BOOST_TEST(render_meta_data(with_hostname(R"(a"b\c)")) ==
               "instance-id: \"iid-1\"\nlocal-hostname: \"a\\\"b\\\\c\"\n");
    // Everything else is literal inside double quotes: no key can be injected.
    const std::string hostile = "x\"\nevil: 1 # - {a: b} [c] &d *e !f |g >h %i @j `k \xC3\xA9";
    BOOST_TEST(render_meta_data(with_hostname("- {a: b}: c # d")) ==
               "instance-id: \"iid-1\"\nlocal-hostname: \"- {a: b}: c # d\"\n");
    expect_rejected(with_hostname(hostile), "local-hostname");
}

BOOST_AUTO_TEST_CASE(rejects_unrepresentable_values_naming_the_field) {
    expect_rejected({"", "vm", {}}, "meta-data instance-id: empty");
    expect_rejected({"a/b", "vm", {}}, "meta-data instance-id");
    expect_rejected({"..", "vm", {}}, "meta-data instance-id");
    expect_rejected({"iid\n", "vm", {}},
                    "meta-data instance-id: contains a control character (U+000A)");
    expect_rejected(with_hostname("vm1\nfoo: bar"),
                    "meta-data local-hostname: contains a control character (U+000A) at byte 3");
    expect_rejected(with_hostname("a\rb"), "local-hostname: contains a control character (U+000D)");
    expect_rejected(with_hostname("a\tb"), "U+0009");
    expect_rejected(with_hostname(std::string("a\0b", 3)), "U+0000");
    expect_rejected(with_hostname("a\x7F"), "U+007F");
    expect_rejected(with_hostname("a\xC2\x85"), "U+0085");     // NEL
    expect_rejected(with_hostname("a\xE2\x80\xA8"), "U+2028"); // line separator
    expect_rejected(with_hostname("a\xE2\x80\xA9"), "U+2029"); // paragraph separator
    expect_rejected(with_hostname("\xEF\xBB\xBF"
                                  "a"),
                    "U+FEFF"); // BOM
    expect_rejected(with_hostname("a\xFF"), "local-hostname: not valid UTF-8 at byte 1");
    expect_rejected(with_hostname("\xED\xA0\x80"), "not valid UTF-8"); // surrogate
    expect_rejected(with_hostname("\xE0\x80\xAF"), "not valid UTF-8"); // overlong
    expect_rejected(with_hostname("\xC3"), "not valid UTF-8");         // truncated
    expect_rejected({"iid", "vm", {"ok", ""}}, "meta-data public-keys[1]: empty");
    expect_rejected({"iid", "vm", {"ok", "ssh-rsa A\nB"}}, "meta-data public-keys[1]: contains");
}

BOOST_AUTO_TEST_CASE(default_network_config_matches_every_ethernet_by_name) {
    BOOST_TEST(default_network_config() == "version: 2\n"
                                           "ethernets:\n"
                                           "  ethernet:\n"
                                           "    match:\n"
                                           "      name: \"e*\"\n"
                                           "    dhcp4: true\n");
}

BOOST_AUTO_TEST_CASE(seed_files_hold_the_nocloud_names) {
    seed s;
    s.user_data = "#cloud-config\n";
    s.meta.instance_id = "iid-1";
    auto files = seed_files(s);
    BOOST_TEST_REQUIRE(files.size() == 2u);
    BOOST_TEST(files[0].name == "meta-data");
    BOOST_TEST(files[0].contents == "instance-id: \"iid-1\"\n");
    BOOST_TEST(files[1].name == "user-data");
    BOOST_TEST(files[1].contents == "#cloud-config\n");

    s.raw_meta_data = "instance-id: raw\n";
    s.network_config = std::string(default_network_config());
    s.vendor_data = "";
    s.meta.instance_id = ""; // ignored: the raw meta-data wins
    files = seed_files(s);
    BOOST_TEST_REQUIRE(files.size() == 4u);
    BOOST_TEST(files[0].contents == "instance-id: raw\n");
    BOOST_TEST(files[2].name == "network-config");
    BOOST_TEST(files[2].contents == default_network_config());
    BOOST_TEST(files[3].name == "vendor-data");
    BOOST_TEST(files[3].contents.empty());

    s.raw_meta_data.reset();
    BOOST_CHECK_THROW(seed_files(s), localvm::error);
}

using localvm::test::test_host_key;

BOOST_AUTO_TEST_CASE(host_key_vendor_data_byte_for_byte) {
    BOOST_TEST(render_host_key_vendor_data(test_host_key) ==
               "#cloud-config\n"
               "ssh_keys:\n"
               "  ed25519_private: |\n"
               "    -----BEGIN OPENSSH PRIVATE KEY-----\n"
               "    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
               "    QyNTUxOQAAACA2bAzwwCx3bxOVwblpM2IWX7DNtqgfvKSLByy1NUvH9wAAAJjSTZ+20k2f\n"
               "    tgAAAAtzc2gtZWQyNTUxOQAAACA2bAzwwCx3bxOVwblpM2IWX7DNtqgfvKSLByy1NUvH9w\n"
               "    AAAEDs8+f5GmCfdLndoq19jrXljbmLmPEtEa0wkFYDvtEjMTZsDPDALHdvE5XBuWkzYhZf\n"
               "    sM22qB+8pIsHLLU1S8f3AAAAEGxvY2Fsdm0taG9zdC12bTEBAgMEBQ==\n"
               "    -----END OPENSSH PRIVATE KEY-----\n"
               "  ed25519_public: \"ssh-ed25519 "
               "AAAAC3NzaC1lZDI1NTE5AAAAIDZsDPDALHdvE5XBuWkzYhZfsM22qB+8pIsHLLU1S8f3 "
               "localvm-host-vm1\"\n");
    // In the seed it is the vendor-data file, beside the caller's user-data.
    seed s;
    s.user_data = "#cloud-config\nssh_keys: {}\n";
    s.meta.instance_id = "iid-1";
    s.vendor_data = render_host_key_vendor_data(test_host_key);
    auto files = seed_files(s);
    BOOST_TEST_REQUIRE(files.size() == 3u);
    BOOST_TEST(files[1].contents == "#cloud-config\nssh_keys: {}\n");
    BOOST_TEST(files[2].name == "vendor-data");
    BOOST_TEST(files[2].contents == render_host_key_vendor_data(test_host_key));
}

BOOST_AUTO_TEST_CASE(host_key_vendor_data_rejects_what_would_not_read_back) {
    auto rejected = [](ssh_host_key k, const std::string& needle) {
        try {
            render_host_key_vendor_data(k);
            BOOST_ERROR("accepted: " << needle);
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
            BOOST_TEST(e.diagnostic().find(needle) != std::string::npos, e.diagnostic());
        }
    };
    auto k = test_host_key;
    k.private_key.pop_back(); // no final newline
    rejected(k, "not an OpenSSH private key file");
    k = test_host_key;
    k.private_key = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    rejected(k, "not an OpenSSH private key file");
    k = test_host_key;
    k.private_key.insert(36, "\n"); // an empty line inside
    rejected(k, "not base64");
    k = test_host_key;
    k.private_key.insert(36, "ssh_keys: x\n");
    rejected(k, "not base64");
    for (const char* pub : {"", "ssh-ed25519 ", "ssh-rsa AAAA", "ssh-ed25519 AAAA\n  x: y",
                            "ssh-ed25519  AAAA", "ssh-ed25519 AAAA \x7f"}) {
        k = test_host_key;
        k.public_key = pub;
        rejected(k, "public key");
    }
}

BOOST_AUTO_TEST_CASE(seed_image_is_deterministic_and_labelled) {
    seed s;
    s.user_data = "#cloud-config\n";
    s.meta = {"iid-1", "vm1", {"ssh-ed25519 AAAA k"}};
    std::string a, b;
    write_seed(s, [&](std::string_view c) { a.append(c); });
    write_seed(s, [&](std::string_view c) { b.append(c); });
    BOOST_TEST((a == b));
    BOOST_TEST(a.substr(16 * 2048 + 40, 6) == "cidata");
    BOOST_TEST((a == render_iso(seed_files(s))));
}

namespace {
struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        std::string t = (std::filesystem::temp_directory_path() / "localvm-seed-XXXXXX").string();
        BOOST_TEST_REQUIRE(::mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
};
std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
} // namespace

BOOST_AUTO_TEST_CASE(seed_file_is_written_atomically_and_replaced) {
    temp_dir dir;
    const auto path = dir.path / "seed.iso";
    seed s;
    s.user_data = "#cloud-config\n";
    s.meta.instance_id = "iid-1";
    write_seed_file(path, s);
    std::string first = slurp(path);
    BOOST_TEST((first == render_iso(seed_files(s))));
    BOOST_TEST((std::filesystem::status(path).permissions() == std::filesystem::perms(0600)));

    s.meta.instance_id = "iid-2";
    write_seed_file(path, s);
    BOOST_TEST((slurp(path) == render_iso(seed_files(s))));
    BOOST_TEST((slurp(path) != first));

    // The same seed again: the file is left as it is (same inode, no new
    // file made); another mode or a link in its place is replaced.
    auto inode = [&] {
        struct ::stat st {};
        return ::lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
    };
    const auto before = inode();
    write_seed_file(path, s);
    BOOST_TEST(inode() == before);
    std::filesystem::permissions(path, std::filesystem::perms(0644));
    write_seed_file(path, s);
    BOOST_TEST(inode() != before);
    BOOST_TEST((std::filesystem::status(path).permissions() == std::filesystem::perms(0600)));
    const auto elsewhere = dir.path / "elsewhere.iso";
    std::filesystem::rename(path, elsewhere);
    std::filesystem::create_symlink(elsewhere, path);
    write_seed_file(path, s);
    BOOST_TEST(!std::filesystem::is_symlink(path));
    BOOST_TEST((slurp(path) == render_iso(seed_files(s))));
    std::filesystem::remove(elsewhere);

    // Invalid input leaves the old seed alone and no temporary file behind.
    s.meta.instance_id = "";
    BOOST_CHECK_THROW(write_seed_file(path, s), localvm::error);
    s.meta.instance_id = "iid-2";
    BOOST_TEST((slurp(path) == render_iso(seed_files(s))));
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir.path))
        names.push_back(e.path().filename().string());
    BOOST_TEST(names == std::vector<std::string>{"seed.iso"}, boost::test_tools::per_element());

    // A missing directory is an I/O error naming the path.
    try {
        write_seed_file(dir.path / "no" / "seed.iso", s);
        BOOST_ERROR("accepted");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == errc::io_error);
        BOOST_TEST(e.diagnostic().find("seed.iso") != std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(network_config_matches_each_nic_by_mac) {
    std::vector<cloudinit::ethernet> nics(2);
    nics[0] = {"user0", "52:54:00:12:34:56", true, {}};
    nics[1] = {"vnic0", "0e:01:02:03:04:05", false, {"10.0.0.1/24", "10.1.0.1/16"}};
    BOOST_TEST(cloudinit::render_network_config(nics) == "version: 2\n"
                                                         "ethernets:\n"
                                                         "  user0:\n"
                                                         "    match:\n"
                                                         "      macaddress: \"52:54:00:12:34:56\"\n"
                                                         "    dhcp4: true\n"
                                                         "  vnic0:\n"
                                                         "    match:\n"
                                                         "      macaddress: \"0e:01:02:03:04:05\"\n"
                                                         "    dhcp4: false\n"
                                                         "    addresses:\n"
                                                         "      - \"10.0.0.1/24\"\n"
                                                         "      - \"10.1.0.1/16\"\n");
    auto refused = [](std::vector<cloudinit::ethernet> bad, const std::string& needle) {
        try {
            cloudinit::render_network_config(bad);
            BOOST_FAIL("accepted: " << needle);
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::errc::invalid_argument);
            BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, e.what());
        }
    };
    refused({{"a b", "0e:01:02:03:04:05", false, {}}}, "the name must be");
    refused({{"vnic0", "0E:01:02:03:04:05", false, {}}}, "is not xx:xx");
    refused({{"vnic0", "0e:01:02:03:04:05\n", false, {}}}, "is not xx:xx");
    refused({{"vnic0", "0e:01:02:03:04:05", false, {"10.0.0.1"}}}, "is not A.B.C.D/N");
    refused({{"vnic0", "0e:01:02:03:04:05", false, {"10.0.0.1/24\"x"}}}, "is not A.B.C.D/N");
    for (const char* bad : {"a.b.c.d/24", "10.0.0.256/24", "10.0.0/24", "10.0.0.1.2/24", "10..0.1/24",
                            "10.0.0.1/33", "10.0.0.1/", "1000.0.0.1/8", "10.0.0.1/2x"})
        refused({{"vnic0", "0e:01:02:03:04:05", false, {bad}}}, "is not A.B.C.D/N");
    refused({{"v", "0e:01:02:03:04:05", false, {}}, {"v", "0e:01:02:03:04:06", false, {}}},
            "given twice");
}

BOOST_AUTO_TEST_CASE(hosts_are_appended_by_deferred_write_files) {
    BOOST_TEST(cloudinit::render_hosts_cloud_config({}) == "");
    BOOST_TEST(cloudinit::render_hosts_cloud_config({{"10.0.0.2", "server"}, {"10.0.0.3", "db.1"}}) ==
               "write_files:\n"
               "  - path: /etc/hosts\n"
               "    append: true\n"
               "    defer: true\n"
               "    content: |\n"
               "      10.0.0.2 server\n"
               "      10.0.0.3 db.1\n");
    BOOST_CHECK_THROW(cloudinit::render_hosts_cloud_config({{"10.0.0.2", "a b"}}), localvm::error);
    BOOST_CHECK_THROW(cloudinit::render_hosts_cloud_config({{"10.0.0.2/24", "a"}}), localvm::error);
    BOOST_CHECK_THROW(cloudinit::render_hosts_cloud_config({{"10.0.0.2\n", "a"}}), localvm::error);
    BOOST_CHECK_THROW(cloudinit::render_hosts_cloud_config({{"ten.0.0.2", "a"}}), localvm::error);
    BOOST_CHECK_THROW(cloudinit::render_hosts_cloud_config({{"10.0.0.300", "a"}}), localvm::error);
    BOOST_TEST(cloudinit::render_hosts_cloud_config({{"0.0.0.0", "z"}, {"255.255.255.255", "b"}}) != "");
}

BOOST_AUTO_TEST_CASE(the_seed_carries_network_config_as_a_third_file) {
    cloudinit::seed s;
    s.meta.instance_id = "iid-1";
    s.network_config = "version: 2\n";
    auto files = cloudinit::seed_files(s);
    BOOST_REQUIRE(files.size() == 3u);
    BOOST_TEST(files[2].name == "network-config");
    BOOST_TEST(files[2].contents == "version: 2\n");
}
