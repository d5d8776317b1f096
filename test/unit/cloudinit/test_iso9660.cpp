// Byte-level checks of the ISO9660 writer against ECMA-119, SUSP 1.12,
// RRIP 1.10 and Joliet: offsets and fields are read back from the image.
#define BOOST_TEST_MODULE iso9660
#include <localvm/cloudinit/iso9660.hpp>
#include <localvm/error.hpp>

#include <boost/test/unit_test.hpp>

#include <map>
#include <optional>
#include <vector>

using namespace localvm::cloudinit;
using localvm::errc;
using namespace std::chrono;

namespace {

constexpr std::size_t S = 2048;

std::uint8_t u8(const std::string& b, std::size_t at) {
    return static_cast<std::uint8_t>(b.at(at));
}
std::uint32_t le(const std::string& b, std::size_t at, int n) {
    std::uint32_t v = 0;
    for (int i = n - 1; i >= 0; --i)
        v = (v << 8) | u8(b, at + i);
    return v;
}
std::uint32_t be(const std::string& b, std::size_t at, int n) {
    std::uint32_t v = 0;
    for (int i = 0; i < n; ++i)
        v = (v << 8) | u8(b, at + i);
    return v;
}
// 7.2.3 / 7.3.3: little-endian then big-endian copy of the same value.
std::uint32_t both32(const std::string& b, std::size_t at) {
    BOOST_TEST(le(b, at, 4) == be(b, at + 4, 4), "both-endian mismatch at " << at);
    return le(b, at, 4);
}
std::uint32_t both16(const std::string& b, std::size_t at) {
    BOOST_TEST(le(b, at, 2) == be(b, at + 2, 2), "both-endian mismatch at " << at);
    return le(b, at, 2);
}

struct record {
    std::size_t offset; // in the image
    std::string bytes;
    std::string id() const { return bytes.substr(33, u8(bytes, 32)); }
    std::uint32_t location() const { return both32(bytes, 2); }
    std::uint32_t size() const { return both32(bytes, 10); }
    std::uint8_t flags() const { return u8(bytes, 25); }
    std::string system_use() const {
        std::size_t start = 33 + u8(bytes, 32);
        start += start % 2;
        return bytes.substr(start);
    }
};

// Reads a directory extent; checks that no record crosses a sector.
std::vector<record> read_directory(const std::string& img, std::uint32_t location,
                                   std::uint32_t size) {
    std::vector<record> out;
    std::size_t pos = std::size_t{location} * S;
    const std::size_t end = pos + size;
    while (pos < end) {
        const std::size_t len = u8(img, pos);
        if (len == 0) {
            pos = (pos / S + 1) * S;
            continue;
        }
        BOOST_TEST(len % 2 == 0, "odd record length at " << pos);
        BOOST_TEST(pos / S == (pos + len - 1) / S, "record crosses a sector at " << pos);
        out.push_back({pos, img.substr(pos, len)});
        pos += len;
    }
    return out;
}

// SUSP entries of a system use area, by signature (first occurrence).
std::map<std::string, std::string> susp(const std::string& area) {
    std::map<std::string, std::string> out;
    for (std::size_t pos = 0; pos + 4 <= area.size();) {
        const std::size_t len = u8(area, pos + 2);
        if (len < 4)
            break;
        BOOST_TEST(u8(area, pos + 3) == 1, "SUSP entry version");
        out.emplace(area.substr(pos, 2), area.substr(pos, len));
        pos += len;
    }
    return out;
}

std::string bytes(std::initializer_list<int> v) {
    std::string s;
    for (int c : v)
        s += static_cast<char>(c);
    return s;
}

const sys_seconds leap_day = sys_days{year{2024} / 2 / 29} + hours{13} + minutes{45} + seconds{7};

std::vector<iso_file> sample() {
    return {{"user-data", "#cloud-config\n", std::filesystem::perms(0444)},
            {"meta-data", "instance-id: \"x\"\n", std::filesystem::perms(0644)},
            {"empty", "", std::filesystem::perms(0444)},
            {"big", std::string(2049, 'b'), std::filesystem::perms(0444)}};
}

iso_options at_leap_day() {
    iso_options o;
    o.timestamp = leap_day;
    return o;
}

} // namespace

BOOST_AUTO_TEST_CASE(volume_descriptors) {
    const auto files = sample();
    const std::string img = render_iso(files, at_leap_day());
    BOOST_TEST(img.size() % S == 0);
    BOOST_TEST(img.size() == iso_image_size(files, at_leap_day()));
    BOOST_TEST(img.substr(0, 16 * S) == std::string(16 * S, '\0'));

    const std::string pvd = img.substr(16 * S, S);
    BOOST_TEST(u8(pvd, 0) == 1);
    BOOST_TEST(pvd.substr(1, 6) == "CD001\1");
    BOOST_TEST(pvd.substr(8, 32) == std::string(32, ' '));
    BOOST_TEST(pvd.substr(40, 32) == "cidata" + std::string(26, ' '));
    BOOST_TEST(both32(pvd, 80) == img.size() / S);
    BOOST_TEST(pvd.substr(88, 32) == std::string(32, '\0'));
    BOOST_TEST(both16(pvd, 120) == 1u);
    BOOST_TEST(both16(pvd, 124) == 1u);
    BOOST_TEST(both16(pvd, 128) == 2048u);
    BOOST_TEST(both32(pvd, 132) == 10u);
    BOOST_TEST(le(pvd, 140, 4) == 19u);
    BOOST_TEST(le(pvd, 144, 4) == 0u);
    BOOST_TEST(be(pvd, 148, 4) == 20u);
    BOOST_TEST(be(pvd, 152, 4) == 0u);
    BOOST_TEST(u8(pvd, 156) == 34);
    BOOST_TEST(both32(pvd, 156 + 2) == 23u);
    BOOST_TEST(both32(pvd, 156 + 10) == 2048u);
    BOOST_TEST(pvd.substr(156 + 18, 7) == bytes({124, 2, 29, 13, 45, 7, 0}));
    BOOST_TEST(u8(pvd, 156 + 25) == 2);
    BOOST_TEST(u8(pvd, 156 + 32) == 1);
    BOOST_TEST(u8(pvd, 156 + 33) == 0);
    BOOST_TEST(pvd.substr(574, 128) == "LOCALVM" + std::string(121, ' '));
    const std::string date = std::string("2024022913450700") + '\0';
    BOOST_TEST(pvd.substr(813, 17) == date);
    BOOST_TEST(pvd.substr(830, 17) == date);
    BOOST_TEST(pvd.substr(847, 17) == std::string(16, '0') + '\0');
    BOOST_TEST(pvd.substr(864, 17) == std::string(16, '0') + '\0');
    BOOST_TEST(u8(pvd, 881) == 1);
    BOOST_TEST(pvd.substr(882) == std::string(S - 882, '\0'));

    const std::string svd = img.substr(17 * S, S);
    BOOST_TEST(u8(svd, 0) == 2);
    BOOST_TEST(svd.substr(1, 6) == "CD001\1");
    std::string ucs_label;
    for (char c : std::string("cidata          "))
        ucs_label += std::string(1, '\0') + c;
    BOOST_TEST(svd.substr(40, 32) == ucs_label);
    BOOST_TEST(svd.substr(88, 3) == "%/E");
    BOOST_TEST(both32(svd, 80) == img.size() / S);
    BOOST_TEST(both16(svd, 128) == 2048u);
    BOOST_TEST(both32(svd, 132) == 10u);
    BOOST_TEST(le(svd, 140, 4) == 21u);
    BOOST_TEST(be(svd, 148, 4) == 22u);
    BOOST_TEST(both32(svd, 156 + 2) == 24u);
    BOOST_TEST(svd.substr(813, 17) == date);

    const std::string term = img.substr(18 * S, S);
    BOOST_TEST(term.substr(0, 7) == "\xFF"
                                    "CD001\1");
    BOOST_TEST(term.substr(7) == std::string(S - 7, '\0'));
}

BOOST_AUTO_TEST_CASE(path_tables) {
    const std::string img = render_iso(sample());
    const std::uint32_t roots[] = {23, 23, 24, 24};
    for (int i = 0; i < 4; ++i) {
        const std::string t = img.substr((19 + i) * S, S);
        const bool big = i % 2 == 1;
        BOOST_TEST(u8(t, 0) == 1); // identifier length
        BOOST_TEST(u8(t, 1) == 0); // extended attribute record length
        BOOST_TEST((big ? be(t, 2, 4) : le(t, 2, 4)) == roots[i]);
        BOOST_TEST((big ? be(t, 6, 2) : le(t, 6, 2)) == 1u); // parent: itself
        BOOST_TEST(u8(t, 8) == 0);                           // root identifier
        BOOST_TEST(t.substr(9) == std::string(S - 9, '\0'));
    }
}

BOOST_AUTO_TEST_CASE(primary_directory_and_rock_ridge) {
    const auto files = sample();
    const std::string img = render_iso(files, at_leap_day());
    const auto dir = read_directory(img, 23, 2048);
    BOOST_TEST_REQUIRE(dir.size() == 6u);
    const std::string date = bytes({124, 2, 29, 13, 45, 7, 0});

    // "." carries SP first (SUSP 5.3), then RR, PX, TF and CE -> ER.
    const record& dot = dir[0];
    BOOST_TEST(dot.id() == std::string(1, '\0'));
    BOOST_TEST(dot.location() == 23u);
    BOOST_TEST(dot.size() == 2048u);
    BOOST_TEST(dot.flags() == 2);
    BOOST_TEST(both16(dot.bytes, 28) == 1u);
    BOOST_TEST(dot.bytes.substr(18, 7) == date);
    const std::string su = dot.system_use();
    BOOST_TEST(su.substr(0, 7) == bytes({'S', 'P', 7, 1, 0xBE, 0xEF, 0}));
    auto e = susp(su);
    BOOST_TEST(e["RR"] == bytes({'R', 'R', 5, 1, 0x81}));
    const std::string& px = e["PX"];
    BOOST_TEST_REQUIRE(px.size() == 36u);
    BOOST_TEST(both32(px, 4) == 040555u);
    BOOST_TEST(both32(px, 12) == 2u); // links
    BOOST_TEST(both32(px, 20) == 0u); // uid
    BOOST_TEST(both32(px, 28) == 0u); // gid
    BOOST_TEST(e["TF"] == bytes({'T', 'F', 26, 1, 0x0E}) + date + date + date);
    const std::string& ce = e["CE"];
    BOOST_TEST_REQUIRE(ce.size() == 28u);
    const std::uint32_t ce_block = both32(ce, 4);
    BOOST_TEST(ce_block == 25u);
    BOOST_TEST(both32(ce, 12) == 0u);
    const std::uint32_t ce_len = both32(ce, 20);
    BOOST_TEST(ce_len == 237u);
    const std::string er = img.substr(ce_block * S, ce_len);
    BOOST_TEST(er.substr(0, 8) == bytes({'E', 'R', 237, 1, 10, 84, 135, 1}));
    BOOST_TEST(er.substr(8, 10) == "RRIP_1991A");
    BOOST_TEST(er.substr(18, 84).starts_with("THE ROCK RIDGE INTERCHANGE PROTOCOL"));

    const record& dotdot = dir[1];
    BOOST_TEST(dotdot.id() == "\1");
    BOOST_TEST(dotdot.location() == 23u);
    BOOST_TEST(susp(dotdot.system_use()).count("SP") == 0u);
    BOOST_TEST(both32(susp(dotdot.system_use())["PX"], 4) == 040555u);

    // Files: sorted by identifier (9.3), 8.3 d-characters, real names in NM.
    struct expect {
        std::string id, name;
        std::uint32_t mode;
        std::string contents;
    };
    const std::vector<expect> want = {{"BIG.;1", "big", 0100444, std::string(2049, 'b')},
                                      {"EMPTY.;1", "empty", 0100444, ""},
                                      {"META_DAT.;1", "meta-data", 0100644, "instance-id: \"x\"\n"},
                                      {"USER_DAT.;1", "user-data", 0100444, "#cloud-config\n"}};
    std::uint32_t next_data = 26;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const record& r = dir[2 + i];
        BOOST_TEST_CONTEXT(want[i].name) {
            BOOST_TEST(r.id() == want[i].id);
            BOOST_TEST(r.flags() == 0);
            BOOST_TEST(r.size() == want[i].contents.size());
            BOOST_TEST(r.bytes.substr(18, 7) == date);
            if (want[i].contents.empty()) {
                BOOST_TEST(r.location() == 0u);
            } else {
                BOOST_TEST(r.location() == next_data);
                BOOST_TEST(img.substr(std::size_t{r.location()} * S, r.size()) == want[i].contents);
                const std::size_t end = std::size_t{r.location()} * S + r.size();
                BOOST_TEST(img.substr(end, (S - end % S) % S) ==
                           std::string((S - end % S) % S, '\0'));
                next_data += (r.size() + S - 1) / S;
            }
            auto su_e = susp(r.system_use());
            BOOST_TEST(su_e["RR"] == bytes({'R', 'R', 5, 1, 0x89}));
            BOOST_TEST(su_e["NM"] ==
                       bytes({'N', 'M', static_cast<int>(5 + want[i].name.size()), 1, 0}) +
                           want[i].name);
            BOOST_TEST(both32(su_e["PX"], 4) == want[i].mode);
            BOOST_TEST(both32(su_e["PX"], 12) == 1u);
            BOOST_TEST(su_e["TF"].size() == 26u);
        }
    }
    BOOST_TEST(next_data == img.size() / S);
}

BOOST_AUTO_TEST_CASE(joliet_directory) {
    const std::string img = render_iso(sample());
    const auto primary = read_directory(img, 23, 2048);
    const auto dir = read_directory(img, 24, 2048);
    BOOST_TEST_REQUIRE(dir.size() == 6u);
    BOOST_TEST(dir[0].id() == std::string(1, '\0'));
    BOOST_TEST(dir[0].location() == 24u);
    BOOST_TEST(dir[1].id() == "\1");
    BOOST_TEST(dir[0].bytes.size() == 34u); // no system use in the Joliet tree
    const char* names[] = {"big", "empty", "meta-data", "user-data"};
    for (int i = 0; i < 4; ++i) {
        std::string ucs;
        for (const char* p = names[i]; *p; ++p)
            ucs += std::string(1, '\0') + *p;
        BOOST_TEST(dir[2 + i].id() == ucs);
        BOOST_TEST(dir[2 + i].bytes.size() == 34u + ucs.size()); // pad byte after even id
        // Same extents as the primary tree.
        BOOST_TEST(dir[2 + i].location() == primary[2 + i].location());
        BOOST_TEST(dir[2 + i].size() == primary[2 + i].size());
    }
}

BOOST_AUTO_TEST_CASE(joliet_names_are_utf16) {
    const std::vector<iso_file> files = {{"\xC3\xA9t\xC3\xA9", "x"}, {"\xF0\x9F\x98\x80", "y"}};
    const std::string img = render_iso(files);
    const auto dir = read_directory(img, 24, 2048);
    BOOST_TEST_REQUIRE(dir.size() == 4u);
    BOOST_TEST(dir[2].id() == bytes({0, 0xE9, 0, 't', 0, 0xE9}));
    BOOST_TEST(dir[3].id() == bytes({0xD8, 0x3D, 0xDE, 0x00}));
    const auto primary = read_directory(img, 23, 2048);
    BOOST_TEST(primary[2].id() == "_.;1");
    BOOST_TEST(primary[3].id() == "_T_.;1");
    BOOST_TEST(susp(primary[3].system_use())["NM"].substr(5) == "\xC3\xA9t\xC3\xA9");
}

BOOST_AUTO_TEST_CASE(primary_names_are_level1_and_unique) {
    std::vector<iso_file> files;
    for (const char* n :
         {"user-data", "user-data2", "user-data3", "a.b.tar.gz", ".hidden", "UPPER", "x"})
        files.push_back({n, "1"});
    const std::string img = render_iso(files);
    std::vector<std::string> ids;
    for (const auto& r : read_directory(img, 23, 2048))
        ids.push_back(r.id());
    const std::vector<std::string> want = {std::string(1, '\0'), "\1",          ".HID;1",
                                           "A_B_TAR.GZ;1",       "UPPER.;1",    "USER_DA1.;1",
                                           "USER_DA2.;1",        "USER_DAT.;1", "X.;1"};
    BOOST_TEST(ids == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(directory_spanning_sectors) {
    std::vector<iso_file> files;
    for (int i = 0; i < 60; ++i)
        files.push_back({"file-number-" + std::to_string(i), std::to_string(i)});
    const std::string img = render_iso(files);
    const std::string pvd = img.substr(16 * S, S);
    const std::uint32_t root_size = both32(pvd, 156 + 10);
    BOOST_TEST(root_size > 2048u);
    BOOST_TEST(root_size % 2048 == 0u);
    const auto dir = read_directory(img, 23, root_size);
    BOOST_TEST(dir.size() == 62u);
    const std::string svd = img.substr(17 * S, S);
    BOOST_TEST(both32(svd, 156 + 2) == 23 + root_size / S);
    BOOST_TEST(read_directory(img, both32(svd, 156 + 2), both32(svd, 156 + 10)).size() == 62u);
    for (std::size_t i = 2; i < dir.size(); ++i) {
        const auto nm = susp(dir[i].system_use())["NM"].substr(5);
        const auto n = std::stoi(nm.substr(12));
        BOOST_TEST(img.substr(std::size_t{dir[i].location()} * S, dir[i].size()) ==
                   std::to_string(n));
    }
}

BOOST_AUTO_TEST_CASE(deterministic_and_order_independent) {
    auto files = sample();
    const std::string a = render_iso(files);
    std::reverse(files.begin(), files.end());
    BOOST_TEST((render_iso(files) == a));
    std::string streamed;
    std::size_t chunks = 0;
    write_iso(files, [&](std::string_view c) { streamed.append(c), ++chunks; });
    BOOST_TEST((streamed == a));
    BOOST_TEST(chunks > 1u); // contents are passed through, not copied into one buffer
    BOOST_TEST((render_iso(files, at_leap_day()) != a));
}

BOOST_AUTO_TEST_CASE(no_files_and_custom_options) {
    iso_options o;
    o.volume_id = "MY Label";
    o.directory_mode = std::filesystem::perms(0755);
    const std::string img = render_iso({}, o);
    BOOST_TEST(img.substr(16 * S + 40, 32) == "MY Label" + std::string(24, ' '));
    BOOST_TEST(read_directory(img, 23, 2048).size() == 2u);
    BOOST_TEST(both32(susp(read_directory(img, 23, 2048)[0].system_use())["PX"], 4) == 040755u);
    BOOST_TEST(img.size() == 26 * S);
}

namespace {
void expect_invalid(std::vector<iso_file> files, const std::string& needle,
                    const iso_options& o = {}) {
    BOOST_TEST_CONTEXT(needle) {
        try {
            render_iso(files, o);
            BOOST_ERROR("accepted");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == errc::invalid_argument);
            BOOST_TEST(e.diagnostic().find(needle) != std::string::npos, e.diagnostic());
        }
    }
}
} // namespace

BOOST_AUTO_TEST_CASE(invalid_input_is_rejected) {
    expect_invalid({{"", "x"}}, "empty");
    expect_invalid({{"a", "x"}, {"a", "y"}}, "given twice");
    expect_invalid({{"a/b", "x"}}, "* / : ; ? \\");
    expect_invalid({{"a;1", "x"}}, "* / : ; ? \\");
    expect_invalid({{"..", "x"}}, "reserved");
    expect_invalid({{"a\nb", "x"}}, "control character");
    expect_invalid({{"\xFF", "x"}}, "UTF-8");
    expect_invalid({{"\xC0\xAF", "x"}}, "UTF-8"); // overlong '/'
    expect_invalid({{std::string(65, 'a'), "x"}}, "64 UTF-16");
    expect_invalid({{std::string(43, 'a') + std::string(30, '\xE2'), "x"}}, "UTF-8");
    std::string long_bytes;
    for (int i = 0; i < 50; ++i)
        long_bytes += "\xC3\xA9"; // 50 units, 100 bytes: fine
    BOOST_CHECK_NO_THROW(render_iso(std::vector<iso_file>{{long_bytes, "x"}}));
    std::string too_many;
    for (int i = 0; i < 60; ++i)
        too_many += "\xE2\x82\xAC"; // 60 units, 180 bytes
    expect_invalid({{too_many, "x"}}, "128 bytes");
    iso_options o;
    o.volume_id = "";
    expect_invalid({}, "volume id", o);
    o.volume_id = std::string(17, 'a');
    expect_invalid({}, "volume id", o);
    o.volume_id = "a\tb";
    expect_invalid({}, "volume id", o);
    o = {};
    o.timestamp = sys_days{year{2200} / 1 / 1};
    expect_invalid({}, "timestamp", o);
    o.timestamp = sys_days{year{1899} / 12 / 31};
    expect_invalid({}, "timestamp", o);
}
