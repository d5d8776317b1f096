#include "snapshot_view.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <ctime>

#include "image_view.hpp"
#include "report.hpp"

namespace localvm::cli {
namespace json = boost::json;

std::string utc_time(std::int64_t t) {
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    if (!::gmtime_r(&tt, &tm))
        return "-";
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string render_snapshot_list_json(const std::vector<qemu::snapshot_info>& snaps) {
    json::array list;
    for (const auto& s : snaps) {
        json::array clones;
        for (const auto& c : s.clones)
            clones.emplace_back(c);
        json::object o;
        o["name"] = s.name;
        o["source_vm"] = s.source_vm;
        o["created_at"] = s.created_at;
        o["qemu_version"] = s.qemu_version;
        o["size_bytes"] = s.state_bytes + s.disk_bytes;
        o["state_bytes"] = s.state_bytes;
        o["disk_bytes"] = s.disk_bytes;
        o["save_ms"] = s.save_ms;
        o["machine"] = s.machine;
        o["cpus"] = s.cpus;
        o["memory_mib"] = s.memory_mib;
        o["clones"] = std::move(clones);
        o["path"] = s.dir.string();
        list.push_back(std::move(o));
    }
    json::object root;
    root["snapshots"] = std::move(list);
    return json::serialize(root);
}

std::string render_snapshot_list_table(const std::vector<qemu::snapshot_info>& snaps) {
    if (snaps.empty())
        return "no snapshots\n";
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "SOURCE", "CREATED (UTC)", "SIZE", "QEMU", "CLONES"}};
    for (const auto& s : snaps) {
        std::string clones;
        for (const auto& c : s.clones)
            clones += (clones.empty() ? "" : ",") + c;
        rows.push_back(
            {s.name, s.source_vm, utc_time(s.created_at), human_bytes(s.state_bytes + s.disk_bytes),
             s.qemu_version.substr(0, s.qemu_version.find(' ')), clones.empty() ? "-" : clones});
    }
    return render_table(rows);
}

invocation with_snapshot_machine(invocation i, const qemu::snapshot_info& snap) {
    if (!i.cpus)
        i.cpus = snap.cpus;
    if (i.memory.empty())
        i.memory = std::to_string(snap.memory_mib) + "M";
    if (i.kernel.empty() && snap.boot) {
        i.kernel = snap.boot->kernel;
        i.initrd = snap.boot->initrd;
        i.cmdline = snap.boot->cmdline;
    }
    if (!i.net)
        i.net = snap.net;
    if (i.forwards.empty()) {
        i.forwards = snap.ports;
        for (auto& f : i.forwards)
            f.host_port = 0;
    }
    return i;
}

} // namespace localvm::cli
