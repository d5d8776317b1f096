// Snapshot records (render, parse, compare) and the snapshot directory:
// list, inspect, delete. The save and the clone are in snapshot_save.cpp.
#include <localvm/error.hpp>
#include <localvm/qemu/snapshot.hpp>

#include "snapshot_files.hpp"
#include "sys/file.hpp"

#include <boost/json.hpp>

#include <algorithm>

namespace localvm::qemu {
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

std::string_view arch_word(arch a) { return a == arch::arm64 ? "arm64" : "amd64"; }
std::string_view net_word(network n) { return n == network::restricted ? "restricted" : "user"; }

std::string mib(std::uint64_t n) { return std::to_string(n) + " MiB"; }

} // namespace

std::string render_snapshot(const snapshot_info& s) {
    json::array ports;
    for (const auto& p : s.ports)
        ports.push_back(json::object{{"host_address", p.host_address},
                                     {"host_port", p.host_port},
                                     {"guest_port", p.guest_port}});
    json::array files;
    for (const auto& f : s.files)
        files.push_back(json::object{{"path", f.path.string()},
                                     {"sha256", f.sha256},
                                     {"size", f.size},
                                     {"mtime_ns", f.mtime_ns}});
    json::value boot = nullptr;
    if (s.boot)
        boot = json::object{{"kernel", s.boot->kernel.string()},
                            {"initrd", s.boot->initrd.string()},
                            {"cmdline", s.boot->cmdline}};
    json::object o{{"name", s.name},
                   {"source_vm", s.source_vm},
                   {"created_at", s.created_at},
                   {"qemu_version", s.qemu_version},
                   {"state_bytes", s.state_bytes},
                   {"disk_bytes", s.disk_bytes},
                   {"save_ms", s.save_ms},
                   {"arch", arch_word(s.architecture)},
                   {"accelerator", to_string(s.accel)},
                   {"machine", s.machine},
                   {"cpus", s.cpus},
                   {"memory_mib", s.memory_mib},
                   {"boot", std::move(boot)},
                   {"firmware_code", s.firmware_code.string()},
                   {"network", net_word(s.net)},
                   {"ports", std::move(ports)},
                   {"files", std::move(files)},
                   {"base_image", s.base_image.string()}};
    return json::serialize(o) + "\n";
}

std::optional<snapshot_info> parse_snapshot(std::string_view text, boost::system::error_code& ec) {
    ec = make_error_code(errc::protocol_error);
    json::error_code jec;
    auto v = json::parse(text, jec);
    if (jec || !v.is_object())
        return std::nullopt;
    const auto& o = v.get_object();
    auto str = [&](const json::object& from, const char* key, auto& out) {
        auto* p = from.if_contains(key);
        if (!p || !p->is_string())
            return false;
        out = std::string(p->get_string());
        return true;
    };
    auto num = [&](const json::object& from, const char* key, auto& out) {
        auto* p = from.if_contains(key);
        if (p && p->is_uint64())
            out = static_cast<std::remove_reference_t<decltype(out)>>(p->get_uint64());
        else if (p && p->is_int64() && p->get_int64() >= 0)
            out = static_cast<std::remove_reference_t<decltype(out)>>(p->get_int64());
        else
            return false;
        return true;
    };
    snapshot_info s;
    std::string a, acc, net, fw, base;
    if (!str(o, "name", s.name) || !str(o, "source_vm", s.source_vm) ||
        !num(o, "created_at", s.created_at) || !str(o, "qemu_version", s.qemu_version) ||
        !num(o, "state_bytes", s.state_bytes) || !num(o, "disk_bytes", s.disk_bytes) ||
        !num(o, "save_ms", s.save_ms) || !str(o, "arch", a) || !str(o, "accelerator", acc) ||
        !str(o, "machine", s.machine) || !num(o, "cpus", s.cpus) ||
        !num(o, "memory_mib", s.memory_mib) || !str(o, "firmware_code", fw) ||
        !str(o, "network", net) || !str(o, "base_image", base))
        return std::nullopt;
    if ((a != "amd64" && a != "arm64") || (acc != "kvm" && acc != "tcg") ||
        (net != "user" && net != "restricted") || s.machine.empty() || s.cpus == 0 ||
        s.memory_mib == 0)
        return std::nullopt;
    s.architecture = a == "arm64" ? arch::arm64 : arch::amd64;
    s.accel = acc == "kvm" ? accelerator::kvm : accelerator::tcg;
    s.net = net == "restricted" ? network::restricted : network::user;
    s.firmware_code = fw;
    s.base_image = base;
    if (auto* b = o.if_contains("boot"); b && b->is_object()) {
        direct_boot d;
        std::string k, i;
        if (!str(b->get_object(), "kernel", k) || !str(b->get_object(), "initrd", i) ||
            !str(b->get_object(), "cmdline", d.cmdline))
            return std::nullopt;
        d.kernel = k;
        d.initrd = i;
        s.boot = std::move(d);
    } else if (!b || !b->is_null()) {
        return std::nullopt;
    }
    auto* ports = o.if_contains("ports");
    auto* files = o.if_contains("files");
    if (!ports || !ports->is_array() || !files || !files->is_array())
        return std::nullopt;
    for (const auto& pv : ports->get_array()) {
        if (!pv.is_object())
            return std::nullopt;
        port_forward p;
        if (!str(pv.get_object(), "host_address", p.host_address) ||
            !num(pv.get_object(), "host_port", p.host_port) ||
            !num(pv.get_object(), "guest_port", p.guest_port))
            return std::nullopt;
        s.ports.push_back(std::move(p));
    }
    for (const auto& fv : files->get_array()) {
        if (!fv.is_object())
            return std::nullopt;
        file_digest f;
        std::string path;
        if (!str(fv.get_object(), "path", path) || !str(fv.get_object(), "sha256", f.sha256) ||
            !num(fv.get_object(), "size", f.size) || !num(fv.get_object(), "mtime_ns", f.mtime_ns))
            return std::nullopt;
        f.path = path;
        s.files.push_back(std::move(f));
    }
    ec = {};
    return s;
}

std::string restore_mismatch(const snapshot_info& snap, unsigned cpus, std::uint64_t memory_mib,
                             const std::optional<direct_boot>& boot,
                             const std::function<std::string(const file_digest&)>& digest_now) {
    std::vector<std::string> why;
    if (cpus != snap.cpus)
        why.push_back("cpus: the snapshot has " + std::to_string(snap.cpus) +
                      ", the start asks for " + std::to_string(cpus));
    if (memory_mib != snap.memory_mib)
        why.push_back("memory: the snapshot has " + mib(snap.memory_mib) +
                      ", the start asks for " + mib(memory_mib));
    if (boot.has_value() != snap.boot.has_value()) {
        why.push_back(std::string("boot: the snapshot was saved from a ") +
                      (snap.boot ? "direct kernel boot" : "firmware boot") +
                      ", the start asks for " + (boot ? "a direct kernel boot" : "firmware boot"));
    } else if (boot) {
        if (fs::absolute(boot->kernel) != snap.boot->kernel)
            why.push_back("kernel: the snapshot has " + snap.boot->kernel.string() +
                          ", the start asks for " + boot->kernel.string());
        if ((boot->initrd.empty() ? fs::path() : fs::absolute(boot->initrd)) != snap.boot->initrd)
            why.push_back("initrd: the snapshot has " + snap.boot->initrd.string() +
                          ", the start asks for " + boot->initrd.string());
        if (boot->cmdline != snap.boot->cmdline)
            why.push_back("kernel command line: the snapshot has \"" + snap.boot->cmdline +
                          "\", the start asks for \"" + boot->cmdline + "\"");
    }
    for (const auto& f : snap.files) {
        auto now = digest_now(f);
        if (now.empty())
            why.push_back(f.path.string() + " is gone (the snapshot was saved with it)");
        else if (now != f.sha256)
            why.push_back(f.path.string() + " changed since the snapshot was saved (sha256 " +
                          f.sha256.substr(0, 12) + "... then, " + now.substr(0, 12) + "... now)");
    }
    std::string out;
    for (const auto& w : why)
        out += (out.empty() ? "" : "; ") + w;
    return out;
}

namespace detail {

std::string machine_from_argv(const std::vector<std::string>& argv, snapshot_info& into) {
    auto value = [&](std::string_view flag) -> const std::string* {
        for (std::size_t i = 0; i + 1 < argv.size(); ++i)
            if (argv[i] == flag)
                return &argv[i + 1];
        return nullptr;
    };
    // "a,,b,c=d" -> the first item with doubled commas undone ("a,b").
    auto first_item = [](const std::string& v) {
        std::string out;
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (v[i] == ',' && i + 1 < v.size() && v[i + 1] == ',') {
                out += ',';
                ++i;
            } else if (v[i] == ',') {
                break;
            } else {
                out += v[i];
            }
        }
        return out;
    };
    const auto* machine = value("-machine");
    const auto* accel = value("-accel");
    const auto* smp = value("-smp");
    const auto* mem = value("-m");
    if (!machine || !accel || !smp || !mem)
        return "QEMU's command line lacks -machine, -accel, -smp or -m";
    into.machine = first_item(*machine);
    into.accel = *accel == "kvm" ? accelerator::kvm : accelerator::tcg;
    try {
        into.cpus = static_cast<unsigned>(std::stoul(*smp));
    } catch (const std::exception&) {
        return "QEMU's -smp " + *smp + " is no number";
    }
    boost::system::error_code ec;
    auto m = parse_memory_mib(*mem, ec);
    if (!m)
        return "QEMU's -m " + *mem + " is no size";
    into.memory_mib = *m;
    if (const auto* k = value("-kernel")) {
        direct_boot b;
        b.kernel = *k;
        if (const auto* i = value("-initrd"))
            b.initrd = *i;
        if (const auto* a = value("-append"))
            b.cmdline = *a;
        into.boot = std::move(b);
    }
    for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
        const auto& v = argv[i + 1];
        if (argv[i] == "-drive" && v.find("if=pflash") != std::string::npos &&
            v.find("unit=0") != std::string::npos) {
            auto at = v.find(",file=");
            if (at != std::string::npos)
                into.firmware_code = first_item(v.substr(at + 6));
        }
        if (argv[i] == "-nic")
            into.net = v.find(",restrict=on") != std::string::npos ? network::restricted
                                                                   : network::user;
    }
    return {};
}

} // namespace detail

fs::path snapshot_root(const options& opts) {
    return data_root(opts.data_dir) / "@snapshots";
}

std::vector<snapshot_info> list_snapshots(const options& opts) {
    std::vector<snapshot_info> out;
    auto root = snapshot_root(opts);
    std::error_code ec;
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (!check_name(name).empty() || !it->is_directory())
            continue;
        boost::system::error_code pec;
        auto s = parse_snapshot(sys::read_file(it->path() / "snapshot.json"), pec);
        if (!s)
            continue;
        s->dir = it->path();
        s->clones = detail::live_clones(it->path());
        out.push_back(std::move(*s));
    }
    std::sort(out.begin(), out.end(),
              [](const snapshot_info& a, const snapshot_info& b) { return a.name < b.name; });
    return out;
}

snapshot_info inspect_snapshot(const options& opts, const std::string& name) {
    if (auto why = check_name(name); !why.empty())
        throw_error(errc::invalid_argument, "snapshot name: " + why);
    auto dir = snapshot_root(opts) / name;
    auto record = dir / "snapshot.json";
    if (!fs::is_regular_file(record))
        throw_error(errc::not_found, "no snapshot named " + name + " (in " +
                                         snapshot_root(opts).string() + ")");
    boost::system::error_code ec;
    auto s = parse_snapshot(sys::read_file(record), ec);
    if (!s)
        throw_error(errc::protocol_error, "snapshot " + name + ": damaged record " +
                                              record.string());
    s->dir = dir;
    s->clones = detail::live_clones(dir);
    return *s;
}

void delete_snapshot(const options& opts, const std::string& name) {
    auto s = inspect_snapshot(opts, name);
    if (!s.clones.empty()) {
        std::string names;
        for (const auto& c : s.clones)
            names += (names.empty() ? "" : ", ") + c;
        throw_error(errc::busy, "snapshot " + name + " is the disk of VMs made from it: " +
                                    names + "; remove them first");
    }
    // A snapshot saved from one of its clones has its disk layer as backing file.
    std::string heirs;
    for (const auto& other : list_snapshots(opts))
        if (other.name != name &&
            other.base_image.lexically_normal().parent_path() == s.dir.lexically_normal())
            heirs += (heirs.empty() ? "" : ", ") + other.name;
    if (!heirs.empty())
        throw_error(errc::busy, "snapshot " + name +
                                    " is the disk of snapshots saved from its clones: " + heirs +
                                    "; delete them first");
    // Out of the way under a name no reader takes for a snapshot, then gone.
    auto doomed = s.dir.parent_path() / (".deleting-" + name);
    std::error_code ec;
    fs::remove_all(doomed, ec);
    fs::rename(s.dir, doomed, ec);
    if (ec)
        throw_error(errc::io_error, "cannot delete snapshot " + name + ": " + ec.message());
    // The frozen files are read-only; their directory is ours to empty.
    fs::remove_all(doomed, ec);
    if (ec)
        throw_error(errc::io_error, "cannot delete " + doomed.string() + ": " + ec.message());
}

} // namespace localvm::qemu
