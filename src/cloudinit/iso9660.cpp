#include <localvm/cloudinit/iso9660.hpp>
#include <localvm/error.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

#include "detail/utf8.hpp"
#include "sys/fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

// Image layout (2048-byte sectors):
//   0-15   system area (zeros)
//   16     primary volume descriptor     17  Joliet supplementary descriptor
//   18     descriptor set terminator
//   19-22  path tables: primary L, primary M, Joliet L, Joliet M
//   23...  primary root directory, Joliet root directory,
//          one sector of Rock Ridge continuation area (the ER entry),
//          then each file's data, sector-aligned, in directory order.
// Every size except the directories' is fixed, so the layout is computed
// once up front and the image streamed in a single pass.

namespace localvm::cloudinit {
namespace {

constexpr std::uint32_t sector = 2048;
constexpr std::uint32_t first_dir_sector = 23;

[[noreturn]] void invalid(std::string what) {
    throw_error(errc::invalid_argument, std::move(what));
}

// --- field encoders (ECMA-119 7.2, 7.3) -------------------------------------

void put_le16(std::string& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<char>(v & 0xFF);
    b[at + 1] = static_cast<char>(v >> 8);
}
void put_be16(std::string& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<char>(v >> 8);
    b[at + 1] = static_cast<char>(v & 0xFF);
}
void put_le32(std::string& b, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        b[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
void put_be32(std::string& b, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        b[at + i] = static_cast<char>((v >> (8 * (3 - i))) & 0xFF);
}
void put_both16(std::string& b, std::size_t at, std::uint16_t v) {
    put_le16(b, at, v);
    put_be16(b, at + 2, v);
}
void put_both32(std::string& b, std::size_t at, std::uint32_t v) {
    put_le32(b, at, v);
    put_be32(b, at + 4, v);
}
void append_both32(std::string& b, std::uint32_t v) {
    b.append(8, '\0');
    put_both32(b, b.size() - 8, v);
}

struct civil_time {
    int year;
    unsigned month, day, hour, minute, second;
};

civil_time to_civil(std::chrono::sys_seconds t) {
    using namespace std::chrono;
    const auto day = floor<days>(t);
    const year_month_day ymd{day};
    const hh_mm_ss hms{t - day};
    return {int(ymd.year()),
            unsigned(ymd.month()),
            unsigned(ymd.day()),
            static_cast<unsigned>(hms.hours().count()),
            static_cast<unsigned>(hms.minutes().count()),
            static_cast<unsigned>(hms.seconds().count())};
}

// 9.1.5: seven bytes, years since 1900, UTC (offset 0).
std::string record_date(const civil_time& c) {
    std::string d(7, '\0');
    d[0] = static_cast<char>(c.year - 1900);
    d[1] = static_cast<char>(c.month);
    d[2] = static_cast<char>(c.day);
    d[3] = static_cast<char>(c.hour);
    d[4] = static_cast<char>(c.minute);
    d[5] = static_cast<char>(c.second);
    return d;
}

// 8.4.26.1: "YYYYMMDDHHMMSScc" digits then the UTC offset byte.
std::string volume_date(const civil_time& c) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%04d%02u%02u%02u%02u%02u00", c.year, c.month, c.day, c.hour,
                  c.minute, c.second);
    return std::string(buf, 16) + '\0';
}
const std::string unset_volume_date = std::string(16, '0') + '\0';

// --- names ------------------------------------------------------------------

struct entry {
    const iso_file* file;
    std::string iso_id;       // primary tree, "NAME.EXT;1"
    std::u16string joliet_id; // Joliet tree
    std::uint32_t location = 0;
};

std::u16string checked_joliet_name(const std::string& name) {
    const std::string field = "ISO file name \"" + name + "\": ";
    if (name.empty())
        invalid("ISO file name: empty");
    if (name == "." || name == "..")
        invalid(field + "reserved");
    if (name.size() > 128)
        invalid(field + "longer than 128 bytes");
    std::u16string out;
    for (std::size_t pos = 0; pos < name.size();) {
        const auto cp = localvm::detail::next_code_point(name, pos);
        if (!cp)
            invalid(field + "not valid UTF-8");
        if (*cp < 0x20 || *cp == 0x7F || (*cp >= 0x80 && *cp < 0xA0))
            invalid(field + "contains a control character");
        if (std::u32string_view(U"*/:;?\\").find(*cp) != std::u32string_view::npos)
            invalid(field + "contains one of * / : ; ? \\");
        if (*cp >= 0x10000) {
            const char32_t v = *cp - 0x10000;
            out += static_cast<char16_t>(0xD800 + (v >> 10));
            out += static_cast<char16_t>(0xDC00 + (v & 0x3FF));
        } else {
            out += static_cast<char16_t>(*cp);
        }
    }
    if (out.size() > 64)
        invalid(field + "longer than 64 UTF-16 units (the Joliet limit)");
    return out;
}

// d-characters only (7.4.1): A-Z 0-9 _; one '_' per other code point.
std::string d_chars(std::string_view s, std::size_t max) {
    std::string out;
    for (std::size_t pos = 0; pos < s.size() && out.size() < max;) {
        const char32_t cp = localvm::detail::next_code_point(s, pos).value_or(U'_');
        if (cp >= U'a' && cp <= U'z')
            out += static_cast<char>(cp - U'a' + U'A');
        else if ((cp >= U'A' && cp <= U'Z') || (cp >= U'0' && cp <= U'9'))
            out += static_cast<char>(cp);
        else
            out += '_';
    }
    return out;
}

struct iso_name {
    std::string base, ext;
};

iso_name level1_name(const std::string& name) {
    const auto dot = name.rfind('.');
    if (dot == std::string::npos)
        return {d_chars(name, 8), {}};
    return {d_chars(std::string_view(name).substr(0, dot), 8),
            d_chars(std::string_view(name).substr(dot + 1), 3)};
}

std::string id_of(const iso_name& n) {
    return n.base + '.' + n.ext + ";1";
}

// 9.3: order by name then extension, each padded with spaces.
bool iso_less(const std::string& a, const std::string& b) {
    auto split = [](const std::string& id) {
        const auto dot = id.find('.');
        const auto semi = id.find(';');
        return std::pair{id.substr(0, dot), id.substr(dot + 1, semi - dot - 1)};
    };
    auto padded_less = [](std::string x, std::string y) {
        const auto n = std::max(x.size(), y.size());
        x.resize(n, ' ');
        y.resize(n, ' ');
        return x < y;
    };
    const auto [an, ae] = split(a);
    const auto [bn, be] = split(b);
    if (an != bn)
        return padded_less(an, bn);
    return padded_less(ae, be);
}

// --- Rock Ridge / SUSP entries (SUSP 1.12, RRIP 1.10) -----------------------

constexpr std::string_view er_id = "RRIP_1991A";
constexpr std::string_view er_descriptor =
    "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
constexpr std::string_view er_source =
    "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN "
    "PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

std::string susp_header(std::string_view sig, std::size_t len) {
    std::string e(sig);
    e += static_cast<char>(len);
    e += '\1';
    return e;
}

std::string rr_er() {
    const std::size_t len = 8 + er_id.size() + er_descriptor.size() + er_source.size();
    std::string e = susp_header("ER", len);
    e += static_cast<char>(er_id.size());
    e += static_cast<char>(er_descriptor.size());
    e += static_cast<char>(er_source.size());
    e += '\1';
    e.append(er_id).append(er_descriptor).append(er_source);
    return e;
}

std::string rr_sp() {
    return susp_header("SP", 7) + "\xBE\xEF" + '\0';
}

std::string rr_ce(std::uint32_t location, std::uint32_t length) {
    std::string e = susp_header("CE", 28);
    append_both32(e, location);
    append_both32(e, 0);
    append_both32(e, length);
    return e;
}

// RRIP 1.09 "RR" flags: which entries follow (bit 0 PX, 3 NM, 7 TF).
std::string rr_rr(bool with_name) {
    return susp_header("RR", 5) + static_cast<char>(with_name ? 0x89 : 0x81);
}

std::string rr_px(std::uint32_t mode, std::uint32_t links) {
    std::string e = susp_header("PX", 36);
    append_both32(e, mode);
    append_both32(e, links);
    append_both32(e, 0); // uid
    append_both32(e, 0); // gid
    return e;
}

// Modify, access and attribute-change times, short form.
std::string rr_tf(const std::string& date) {
    return susp_header("TF", 5 + 3 * 7) + '\x0E' + date + date + date;
}

std::string rr_nm(const std::string& name) {
    return susp_header("NM", 5 + name.size()) + '\0' + name;
}

// --- directory records (9.1) --------------------------------------------------

constexpr std::size_t record_location_at = 2;

std::string dir_record(std::string_view id, std::uint32_t location, std::uint32_t size,
                       const std::string& date, bool directory, std::string_view system_use) {
    std::size_t len = 33 + id.size();
    len += len % 2; // padding byte after an even-length identifier
    const std::size_t total = len + system_use.size() + (system_use.size() % 2);
    if (total > 255)
        invalid("ISO directory record too long for \"" + std::string(id) + "\"");
    std::string r(total, '\0');
    r[0] = static_cast<char>(total);
    put_both32(r, record_location_at, location);
    put_both32(r, 10, size);
    r.replace(18, 7, date);
    r[25] = directory ? 2 : 0;
    put_both16(r, 28, 1); // volume sequence number
    r[32] = static_cast<char>(id.size());
    r.replace(33, id.size(), id);
    r.replace(len, system_use.size(), system_use);
    return r;
}

std::string ucs2(std::u16string_view s) {
    std::string out;
    for (char16_t c : s) {
        out += static_cast<char>(c >> 8);
        out += static_cast<char>(c & 0xFF);
    }
    return out;
}

// Packs records into sectors: a record never crosses a sector boundary.
std::uint32_t directory_sectors(const std::vector<std::string>& records) {
    std::uint32_t sectors = 1, used = 0;
    for (const auto& r : records) {
        if (used + r.size() > sector)
            ++sectors, used = 0;
        used += static_cast<std::uint32_t>(r.size());
    }
    return sectors;
}

void append_directory(std::string& img, const std::vector<std::string>& records) {
    const std::size_t start = img.size();
    std::size_t used = 0;
    for (const auto& r : records) {
        if (used + r.size() > sector) {
            img.append(sector - used, '\0');
            used = 0;
        }
        img += r;
        used += r.size();
    }
    img.append((sector - (img.size() - start) % sector) % sector, '\0');
}

std::string path_table(std::uint32_t root, bool big_endian) {
    std::string t(10, '\0');
    t[0] = 1; // identifier length; [1] extended attribute length 0
    if (big_endian) {
        put_be32(t, 2, root);
        put_be16(t, 6, 1);
    } else {
        put_le32(t, 2, root);
        put_le16(t, 6, 1);
    }
    return t; // [8] identifier 0x00 (root), [9] padding
}

std::string padded(std::string_view s, std::size_t n) {
    std::string out(s.substr(0, n));
    out.resize(n, ' ');
    return out;
}

std::string ucs2_padded(std::string_view ascii, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i + 1 < n; i += 2) {
        out += '\0';
        out += i / 2 < ascii.size() ? ascii[i / 2] : ' ';
    }
    out.resize(n, '\0');
    return out;
}

struct layout {
    std::vector<entry> entries;
    std::vector<std::string> iso_records, joliet_records;
    std::uint32_t iso_root, iso_root_sectors, joliet_root, joliet_root_sectors, ce_sector,
        total_sectors;
    std::string date;
    civil_time time;
    std::string volume_id;
};

void check_options(const iso_options& o) {
    if (o.volume_id.empty() || o.volume_id.size() > 16)
        invalid("ISO volume id \"" + o.volume_id + "\": must be 1 to 16 characters");
    for (char c : o.volume_id)
        if (c < 0x20 || c > 0x7E)
            invalid("ISO volume id: contains a character other than printable ASCII");
    const int year = to_civil(o.timestamp).year;
    if (year < 1900 || year > 2155)
        invalid("ISO timestamp: year " + std::to_string(year) + " outside 1900-2155");
}

layout plan(std::span<const iso_file> files, const iso_options& options) {
    check_options(options);
    layout l;
    l.time = to_civil(options.timestamp);
    l.volume_id = options.volume_id;
    l.date = record_date(l.time);

    // Validate and order by real name first, so that collision suffixes in
    // the primary tree do not depend on the caller's order.
    std::vector<const iso_file*> sorted;
    for (const auto& f : files)
        sorted.push_back(&f);
    std::sort(sorted.begin(), sorted.end(),
              [](const iso_file* a, const iso_file* b) { return a->name < b->name; });
    std::set<std::string> ids;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        const iso_file& f = *sorted[i];
        auto joliet = checked_joliet_name(f.name);
        if (i > 0 && sorted[i - 1]->name == f.name)
            invalid("ISO file name \"" + f.name + "\": given twice");
        if (f.contents.size() > std::numeric_limits<std::uint32_t>::max())
            invalid("ISO file \"" + f.name + "\": 4 GiB or larger");
        iso_name n = level1_name(f.name);
        for (unsigned k = 1; !ids.insert(id_of(n)).second; ++k) {
            const std::string suffix = std::to_string(k);
            auto base = level1_name(f.name).base;
            base.resize(std::min<std::size_t>(base.size(), 8 - suffix.size()));
            n.base = base + suffix;
        }
        l.entries.push_back({&f, id_of(n), std::move(joliet)});
    }
    std::sort(l.entries.begin(), l.entries.end(),
              [](const entry& a, const entry& b) { return iso_less(a.iso_id, b.iso_id); });

    // Records with placeholder locations: only their sizes matter here.
    const std::string ce = rr_ce(0, 0);
    const auto dir_mode = 0040000u | (static_cast<std::uint32_t>(options.directory_mode) & 07777u);
    const std::string dot_su = rr_sp() + rr_rr(false) + rr_px(dir_mode, 2) + rr_tf(l.date) + ce;
    const std::string dotdot_su = rr_rr(false) + rr_px(dir_mode, 2) + rr_tf(l.date);
    l.iso_records.push_back(dir_record(std::string_view("\0", 1), 0, 0, l.date, true, dot_su));
    l.iso_records.push_back(dir_record("\1", 0, 0, l.date, true, dotdot_su));
    l.joliet_records.push_back(dir_record(std::string_view("\0", 1), 0, 0, l.date, true, {}));
    l.joliet_records.push_back(dir_record("\1", 0, 0, l.date, true, {}));
    for (const auto& e : l.entries) {
        const auto mode = 0100000u | (static_cast<std::uint32_t>(e.file->mode) & 07777u);
        const auto size = static_cast<std::uint32_t>(e.file->contents.size());
        l.iso_records.push_back(
            dir_record(e.iso_id, 0, size, l.date, false,
                       rr_rr(true) + rr_nm(e.file->name) + rr_px(mode, 1) + rr_tf(l.date)));
    }
    // Joliet order: by UCS-2 name (the same rule as 9.3 applied to UCS-2).
    std::vector<const entry*> joliet_order;
    for (const auto& e : l.entries)
        joliet_order.push_back(&e);
    std::sort(joliet_order.begin(), joliet_order.end(),
              [](const entry* a, const entry* b) { return a->joliet_id < b->joliet_id; });
    for (const entry* e : joliet_order)
        l.joliet_records.push_back(dir_record(ucs2(e->joliet_id), 0,
                                              static_cast<std::uint32_t>(e->file->contents.size()),
                                              l.date, false, {}));

    l.iso_root = first_dir_sector;
    l.iso_root_sectors = directory_sectors(l.iso_records);
    l.joliet_root = l.iso_root + l.iso_root_sectors;
    l.joliet_root_sectors = directory_sectors(l.joliet_records);
    l.ce_sector = l.joliet_root + l.joliet_root_sectors;
    std::uint64_t next = l.ce_sector + 1;
    for (auto& e : l.entries) {
        // Empty files get no extent: location 0 and size 0, which every
        // reader tested (isoinfo, xorriso, libarchive, Linux) accepts.
        e.location = e.file->contents.empty() ? 0 : static_cast<std::uint32_t>(next);
        next += (e.file->contents.size() + sector - 1) / sector;
        if (next > std::numeric_limits<std::uint32_t>::max())
            invalid("ISO image: 8 TiB or larger");
    }
    l.total_sectors = static_cast<std::uint32_t>(next);

    // Patch locations and sizes now that the layout is known.
    auto patch = [](std::string& r, std::uint32_t location, std::uint32_t size) {
        put_both32(r, record_location_at, location);
        put_both32(r, 10, size);
    };
    for (std::size_t i = 0; i < 2; ++i) {
        patch(l.iso_records[i], l.iso_root, l.iso_root_sectors * sector);
        patch(l.joliet_records[i], l.joliet_root, l.joliet_root_sectors * sector);
    }
    // CE is the last entry of the root's "." record.
    const std::string real_ce = rr_ce(l.ce_sector, static_cast<std::uint32_t>(rr_er().size()));
    auto& dot = l.iso_records[0];
    dot.replace(34 + dot_su.size() - ce.size(), ce.size(), real_ce);
    for (std::size_t i = 0; i < l.entries.size(); ++i)
        put_both32(l.iso_records[2 + i], record_location_at, l.entries[i].location);
    for (std::size_t i = 0; i < joliet_order.size(); ++i)
        put_both32(l.joliet_records[2 + i], record_location_at, joliet_order[i]->location);
    return l;
}

// 8.4 (primary) and 8.5 (supplementary, Joliet when `joliet`).
std::string volume_descriptor(const layout& l, bool joliet) {
    std::string d(sector, '\0');
    d[0] = joliet ? 2 : 1;
    d.replace(1, 5, "CD001");
    d[6] = 1;
    auto text = [&](std::size_t at, std::size_t n, std::string_view s) {
        d.replace(at, n, joliet ? ucs2_padded(s, n) : padded(s, n));
    };
    text(8, 32, "");                    // system identifier
    text(40, 32, l.volume_id);          // volume identifier
    put_both32(d, 80, l.total_sectors); // volume space size
    if (joliet)
        d.replace(88, 3, "%/E"); // UCS-2 level 3
    put_both16(d, 120, 1);       // volume set size
    put_both16(d, 124, 1);       // volume sequence number
    put_both16(d, 128, sector);  // logical block size
    put_both32(d, 132, 10);      // path table size
    const std::uint32_t pt = joliet ? 21 : 19;
    put_le32(d, 140, pt);
    put_be32(d, 148, pt + 1);
    std::string root = joliet ? l.joliet_records[0] : l.iso_records[0];
    root.resize(34);
    root[0] = 34; // the descriptor's copy carries no system use field
    d.replace(156, 34, root);
    text(190, 128, "");        // volume set
    text(318, 128, "");        // publisher
    text(446, 128, "");        // data preparer
    text(574, 128, "LOCALVM"); // application
    text(702, 37, "");         // copyright file
    text(739, 37, "");         // abstract file
    text(776, 37, "");         // bibliographic file
    const std::string date = volume_date(l.time);
    d.replace(813, 17, date);              // creation
    d.replace(830, 17, date);              // modification
    d.replace(847, 17, unset_volume_date); // expiration
    d.replace(864, 17, unset_volume_date); // effective
    d[881] = 1;                            // file structure version
    return d;
}

// Everything before the first file's data.
std::string metadata(const layout& l) {
    std::string img(16 * sector, '\0');
    img += volume_descriptor(l, false);
    img += volume_descriptor(l, true);
    std::string terminator(sector, '\0');
    terminator[0] = static_cast<char>(255);
    terminator.replace(1, 5, "CD001");
    terminator[6] = 1;
    img += terminator;
    for (auto [root, big] : {std::pair{l.iso_root, false}, std::pair{l.iso_root, true},
                             std::pair{l.joliet_root, false}, std::pair{l.joliet_root, true}}) {
        img += path_table(root, big);
        img.append(sector - 10, '\0');
    }
    append_directory(img, l.iso_records);
    append_directory(img, l.joliet_records);
    std::string ce = rr_er();
    ce.resize(sector, '\0');
    img += ce;
    return img;
}

} // namespace

std::uint64_t iso_image_size(std::span<const iso_file> files, const iso_options& options) {
    return std::uint64_t{plan(files, options).total_sectors} * sector;
}

void write_iso(std::span<const iso_file> files, const byte_writer& out,
               const iso_options& options) {
    const layout l = plan(files, options);
    out(metadata(l));
    static const std::string zeros(sector, '\0');
    for (const auto& e : l.entries) {
        const std::string& c = e.file->contents;
        if (c.empty())
            continue;
        out(c);
        if (c.size() % sector != 0)
            out(std::string_view(zeros).substr(0, sector - c.size() % sector));
    }
}

std::string render_iso(std::span<const iso_file> files, const iso_options& options) {
    std::string img;
    img.reserve(iso_image_size(files, options));
    write_iso(
        files, [&](std::string_view chunk) { img.append(chunk); }, options);
    return img;
}

namespace {

// Does `path` already hold exactly `image`, as a regular file of ours with
// permissions `mode`? Not through a symbolic link.
bool already_holds(const std::filesystem::path& path, std::string_view image,
                   std::filesystem::perms mode) {
    sys::unique_fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    struct ::stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
        (st.st_mode & 07777) != static_cast<mode_t>(mode) ||
        static_cast<std::uint64_t>(st.st_size) != image.size())
        return false;
    std::string have(image.size(), '\0');
    return sys::read_full(fd.get(), have.data(), have.size()) == have.size() && have == image;
}

} // namespace

void write_iso_file(const std::filesystem::path& path, std::span<const iso_file> files,
                    const iso_options& options, std::filesystem::perms mode) {
    // In memory first: bad input throws (as write_iso) before the file
    // system is touched.
    const std::string image = render_iso(files, options);
    // A VM's seed is the same from start to start unless its settings
    // change: left alone then, no new file (an inode made and one freed on
    // every start, most of the cost on ext4).
    if (already_holds(path, image, mode))
        return;
    // Atomic but not fsync'd: a seed is rebuilt on every start, and a flush
    // would cost more than writing the whole image (see bench/cloudinit).
    write_file_atomic(path, image, mode, false);
}

} // namespace localvm::cloudinit
