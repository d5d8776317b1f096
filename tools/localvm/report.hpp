// What the localvm command prints: the status object, the boot timeline and
// the progress line. Pure functions, unit tested.
#pragma once

#include <localvm/qemu/list.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qemu/network.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::cli {

/// `text` made safe to print on a terminal: guest text (an SSH banner,
/// QEMU's stderr, console lines) must not move the cursor, retitle the
/// window or clear the screen. Every control character except '\n' and
/// '\t' becomes a visible escape: C0 bytes and DEL as "\xNN" (ESC is
/// "\x1b", CR "\x0d"), C1 controls (U+0080..U+009F, which some terminals
/// obey like ESC sequences) as "\uNNNN"; bytes that are not valid UTF-8 as
/// "\xNN". Other UTF-8 passes unchanged. Idempotent: its output is left as is.
std::string terminal_safe(std::string_view text);

/// One moment of a boot timeline.
struct timeline_entry {
    std::string stage;  ///< A qemu::boot_stage word, or "console-output".
    double seconds = 0; ///< Since the command began.
    std::string detail; ///< For people ("pid 123", the SSH banner, ...).
};

/// The moments `up` saw, in the order they happened.
struct timeline {
    std::string vm;                      ///< The VM's name.
    std::vector<timeline_entry> entries; ///< In order.
};

/// A table for people: one line per entry with its time and the time since
/// the previous entry, under a heading naming the VM. Made `terminal_safe`.
std::string render_timeline_table(const timeline& t);

/// One JSON object: {"vm": NAME, "stages": [{"stage", "seconds", "detail"}...]}.
std::string render_timeline_json(const timeline& t);

/// What `status` knows about a VM.
struct status_report {
    std::string name;
    qemu::status st;                ///< From qemu::manager::query().
    qemu::layout files;             ///< From qemu::manager::files().
    std::filesystem::path identity; ///< The SSH key `shell` uses.
    std::int64_t now = 0;           ///< Unix time, seconds (for the uptime).
};

/// "running" (QEMU runs), "stopped" (the disk exists) or "absent".
std::string_view state_word(const qemu::status& st) noexcept;

/// The `status --json` object, one line, keys in this order: name, state,
/// pid (null when not running), accelerator ("kvm"/"tcg", null when not
/// running), ports ([{host_address, host_port, guest_port}], empty when not
/// running), uptime_seconds (null when not running), last_end (how it last
/// ended: an end_reason word), last_end_detail, paths {data, runtime, disk,
/// seed, console_log, qemu_log, qmp_socket, console_socket, identity},
/// monitor_socket (the HMP socket `localvm monitor` attaches to; null unless
/// the VM runs with a monitor), stopped_by (the step of `stop` that ended
/// the VM: "powerdown", "quit", "sigterm", "sigkill"; null unless stop did),
/// accelerator_fallback (why a running VM is under TCG after automatic
/// acceleration tried KVM, e.g. "no console output within 20 s"; null
/// otherwise).
/// nics ([{network, id, mac, address, link}] with link "up" or "down";
/// empty when not running).
std::string render_status_json(const status_report& r);

/// The same for people, a few aligned lines (ports, monitor and networks
/// only while it runs; networks only when it has NICs on any).
std::string render_status_text(const status_report& r);

/// `list --json`: one JSON object, one line, {"vms": [...]} with one object
/// per VM in `vms`' order, keys in this order: name, state ("running",
/// "stopped", "absent"), exists (the disk exists), running, pid (null
/// unless running), accelerator ("kvm"/"tcg", null unless running),
/// accelerator_fallback (why TCG after a KVM attempt; null otherwise),
/// uptime_seconds (null unless running), ports ([{host_address, host_port,
/// guest_port}], forwards added at run time included; empty unless
/// running), monitor (QEMU has a human monitor), monitor_socket (null
/// without one), last_end (an end_reason word: "none", "stopped",
/// "guest-shutdown", "crashed", "killed"), last_end_detail, ended_at (Unix
/// seconds; null when it has not ended), stopped_by (a stop_step word; null
/// unless `stop` ended it).
std::string render_list_json(const std::vector<qemu::vm_listing>& vms, std::int64_t now);

/// `list` for people: a heading, then one line per VM: NAME, STATE, PID,
/// ACCEL, UPTIME, FORWARDS ("127.0.0.1:40000->22,..."), LAST END; "-" for
/// what does not apply. "no VMs" alone when there are none.
std::string render_list_table(const std::vector<qemu::vm_listing>& vms, std::int64_t now);

/// Rows as columns, each but the last padded to its widest cell plus two
/// spaces, one line each (terminal-safe). Empty for no rows.
std::string render_table(const std::vector<std::vector<std::string>>& rows);

/// A forward as `forward` prints it: "127.0.0.1:40000 -> 8080".
std::string forward_text(const port_forward& f);
/// `network list` for people: one line per network, "NAME  switch pid N |
/// switch stopped  members: vm1 10.0.0.1/24 (running), vm2 (stopped)", or
/// "no networks". Made `terminal_safe`.
std::string render_network_list(
    const std::vector<std::pair<std::string, qemu::network_status>>& networks);

/// The progress line: "[  12.3s] STAGE | CONSOLE" cut to `width` columns
/// (counted in UTF-8 code points; a cut ends in "…"), without a newline.
/// STAGE and CONSOLE are made `terminal_safe` first.
std::string status_line(std::chrono::milliseconds elapsed, std::string_view stage,
                        std::string_view console, std::size_t width);

} // namespace localvm::cli
