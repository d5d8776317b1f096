#include "snapshot_cmd.hpp"

#include <localvm/error.hpp>
#include <localvm/qemu/snapshot.hpp>

#include <algorithm>
#include <cstdio>

#include "image_view.hpp"
#include "snapshot_view.hpp"

namespace localvm::cli {
namespace {

qemu::options store_options(const invocation& i) {
    qemu::options o;
    o.data_dir = i.data_dir;
    o.runtime_dir = i.runtime_dir;
    return o;
}

void say(const invocation& i, const std::string& line) {
    if (i.level != verbosity::quiet)
        std::fprintf(stderr, "%s\n", terminal_safe(line).c_str());
}

} // namespace

boost::asio::awaitable<int> cmd_snapshot_save(const invocation& i, qemu::manager& vm, progress& p) {
    // Checked here for the clearer line; the library checks again under the VM's lock.
    bool exists = co_await vm.exists();
    if (!exists)
        throw_error(errc::not_found, "VM " + i.name + " does not exist");
    bool running = co_await vm.running();
    if (!running)
        throw_error(errc::not_running, "VM " + i.name +
                                           " is not running; a snapshot saves a running VM "
                                           "(start it with `localvm start " +
                                           i.name + "`)");
    qemu::snapshot_options so;
    so.then = i.stop_after_save ? qemu::after_save::stop : qemu::after_save::resume;
    p.activity("saving " + i.name + " as snapshot " + i.snapshot);
    auto info = co_await vm.snapshot(i.snapshot, so);
    p.finish();
    say(i, "saved " + i.name + " as snapshot " + i.snapshot + " (" +
               human_bytes(info.state_bytes + info.disk_bytes) + ", guest paused " +
               std::to_string(info.save_ms) + " ms); " + i.name +
               (i.stop_after_save ? " is stopped" : " runs on") +
               "; clone it with `localvm clone " + i.snapshot + " NEW`");
    co_return 0;
}

boost::asio::awaitable<int> cmd_snapshot_store(const invocation& i) {
    auto o = store_options(i);
    if (i.snapshot_action == "list") {
        auto all = qemu::list_snapshots(o);
        auto text =
            i.json ? render_snapshot_list_json(all) + "\n" : render_snapshot_list_table(all);
        std::fputs(text.c_str(), stdout);
        co_return 0;
    }
    auto s = qemu::inspect_snapshot(o, i.snapshot);
    if (!s.clones.empty()) {
        std::string names;
        for (const auto& c : s.clones)
            names += (names.empty() ? "" : ", ") + c;
        throw_error(errc::busy, "snapshot " + i.snapshot + " is the disk of " +
                                    (s.clones.size() > 1 ? "its clones " : "its clone ") + names +
                                    "; delete " + (s.clones.size() > 1 ? "them" : "it") +
                                    " first (`localvm delete NAME`)");
    }
    qemu::delete_snapshot(o, i.snapshot); // refuses again if a clone appeared meanwhile
    say(i, "deleted snapshot " + i.snapshot);
    co_return 0;
}

boost::asio::awaitable<int> cmd_clone(const invocation& i, qemu::manager& vm, progress& p) {
    p.activity("creating " + i.name + " from snapshot " + i.snapshot);
    co_await vm.create_from_snapshot(i.snapshot);
    p.finish();
    say(i, "created " + i.name + " from snapshot " + i.snapshot + "; `localvm start " + i.name +
               "` restores it");
    co_return 0;
}

invocation with_clone_defaults(const invocation& i) {
    if (i.cmd != command::start && i.cmd != command::up)
        return i;
    for (const auto& s : qemu::list_snapshots(store_options(i)))
        if (std::find(s.clones.begin(), s.clones.end(), i.name) != s.clones.end())
            return with_snapshot_machine(i, s);
    return i;
}

} // namespace localvm::cli
