#include "report.hpp"

#include <boost/json.hpp>

#include <cstdio>

namespace localvm::cli {
namespace json = boost::json;

namespace {

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", s);
    return buf;
}

std::string_view stage_label(std::string_view stage) {
    if (stage == "qemu-spawned")
        return "QEMU spawned";
    if (stage == "qmp-ready")
        return "QMP ready";
    if (stage == "guest-running")
        return "guest CPUs started";
    if (stage == "console-output")
        return "first console output";
    if (stage == "ssh-banner")
        return "SSH banner";
    if (stage == "ssh-login")
        return "SSH login";
    if (stage == "kvm-fallback")
        return "KVM given up";
    return stage;
}

std::string pad(std::string s, std::size_t n) {
    if (s.size() < n)
        s.resize(n, ' ');
    return s;
}

std::string pad_left(const std::string& s, std::size_t n) {
    return s.size() >= n ? s : std::string(n - s.size(), ' ') + s;
}

// Bytes of `s` holding at most `n` UTF-8 code points.
std::size_t prefix_bytes(std::string_view s, std::size_t n) {
    std::size_t points = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80)
            continue;
        if (points == n)
            return i;
        ++points;
    }
    return s.size();
}

std::size_t code_points(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        n += (c & 0xC0) != 0x80;
    return n;
}

// Length of a valid UTF-8 sequence at s[i], 0 when invalid or truncated.
std::size_t utf8_length(std::string_view s, std::size_t i) {
    auto at = [&](std::size_t k) {
        return static_cast<unsigned char>(s[k]);
    };
    unsigned char c = at(i);
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xbf; // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : lo; // overlong
        hi = c == 0xed ? 0x9f : hi; // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi;
    } else {
        return 0;
    }
    if (i + len > s.size() || at(i + 1) < lo || at(i + 1) > hi)
        return 0;
    for (std::size_t k = 2; k < len; ++k)
        if (at(i + k) < 0x80 || at(i + k) > 0xbf)
            return 0;
    return len;
}

} // namespace

std::string terminal_safe(std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f)) {
            out += static_cast<char>(c);
            ++i;
        } else if (c < 0x80) { // C0 control or DEL
            out += {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
            ++i;
        } else if (auto len = utf8_length(text, i)) {
            auto c2 = static_cast<unsigned char>(text[i + 1]);
            if (c == 0xc2 && c2 < 0xa0) // U+0080..U+009F: C1 controls
                out += {'\\', 'u', '0', '0', hex[c2 >> 4], hex[c2 & 0xf]};
            else
                out.append(text.substr(i, len));
            i += len;
        } else {
            out += {'\\', 'x', hex[c >> 4], hex[c & 0xf]};
            ++i;
        }
    }
    return out;
}

std::string render_timeline_table(const timeline& t) {
    std::string out = "boot timeline of " + t.vm + ":\n";
    double previous = 0;
    for (const auto& e : t.entries) {
        out += pad_left(seconds_text(e.seconds), 8) + " s  " +
               pad_left("+" + seconds_text(e.seconds - previous), 7) + " s  " +
               pad(std::string(stage_label(e.stage)), 21);
        if (!e.detail.empty())
            out += terminal_safe(e.detail);
        while (!out.empty() && out.back() == ' ')
            out.pop_back();
        out += "\n";
        previous = e.seconds;
    }
    return out;
}

std::string render_timeline_json(const timeline& t) {
    json::array stages;
    for (const auto& e : t.entries) {
        json::object o;
        o["stage"] = e.stage;
        o["seconds"] = e.seconds;
        o["detail"] = e.detail;
        stages.push_back(std::move(o));
    }
    json::object root;
    root["vm"] = t.vm;
    root["stages"] = std::move(stages);
    return json::serialize(root);
}

std::string_view state_word(const qemu::status& st) noexcept {
    if (st.running)
        return "running";
    return st.exists ? "stopped" : "absent";
}

namespace {

// The fields `status --json` and `list --json` share, each null (ports:
// empty) as the README documents.
bool live(const qemu::status& s) { return s.running && s.state.has_value(); }

json::value pid_json(const qemu::status& s) {
    return s.running && s.pid ? json::value(*s.pid) : json::value(nullptr);
}

json::value accel_json(const qemu::status& s) {
    return live(s) ? json::value(qemu::to_string(s.state->accel)) : json::value(nullptr);
}

json::value fallback_json(const qemu::status& s) {
    return live(s) && !s.state->accel_fallback.empty() ? json::value(s.state->accel_fallback)
                                                       : json::value(nullptr);
}

json::value uptime_json(const qemu::status& s, std::int64_t now) {
    return live(s) && s.state->started_at > 0
               ? json::value(std::max<std::int64_t>(0, now - s.state->started_at))
               : json::value(nullptr);
}

json::array ports_json(const qemu::status& s) {
    json::array ports;
    if (live(s))
        for (const auto& p : s.state->ports)
            ports.push_back(json::object{{"host_address", p.host_address},
                                         {"host_port", p.host_port},
                                         {"guest_port", p.guest_port}});
    return ports;
}

json::value stopped_by_json(const qemu::status& s) {
    return !s.running && s.state && s.state->stopped_by != qemu::stop_step::none
               ? json::value(qemu::to_string(s.state->stopped_by))
               : json::value(nullptr);
}

} // namespace

std::string forward_text(const port_forward& f) {
    return f.host_address + ":" + std::to_string(f.host_port) + " -> " +
           std::to_string(f.guest_port);
}

std::string render_status_json(const status_report& r) {
    const auto& s = r.st;
    json::object o;
    o["name"] = r.name;
    o["state"] = state_word(s);
    o["pid"] = pid_json(s);
    o["accelerator"] = accel_json(s);
    o["ports"] = ports_json(s);
    o["uptime_seconds"] = uptime_json(s, r.now);
    o["last_end"] = s.state ? qemu::to_string(s.state->last_end) : "none";
    o["last_end_detail"] = s.state ? s.state->last_end_detail : "";
    json::object paths;
    paths["data"] = r.files.data.string();
    paths["runtime"] = r.files.runtime.string();
    paths["disk"] = r.files.disk.string();
    paths["seed"] = r.files.seed.string();
    paths["console_log"] = r.files.console_log.string();
    paths["qemu_log"] = r.files.qemu_log.string();
    paths["qmp_socket"] = r.files.qmp_socket.string();
    paths["console_socket"] = r.files.console_socket.string();
    paths["identity"] = r.identity.string();
    o["paths"] = std::move(paths);
    // Last, so that the keys before keep their places.
    o["monitor_socket"] = s.running && s.monitor ? json::value(r.files.monitor_socket.string())
                                                 : json::value(nullptr);
    // Which step of `stop` ended the VM ("powerdown", "quit", "sigterm",
    // "sigkill"); null unless stop ended it.
    o["stopped_by"] = stopped_by_json(s);
    // Why a running VM is under TCG although automatic tried KVM; null otherwise.
    o["accelerator_fallback"] = fallback_json(s);
    json::array nics;
    if (s.running && s.state)
        for (const auto& n : s.state->nics)
            nics.push_back(json::object{{"network", n.network},
                                        {"id", n.id},
                                        {"mac", n.mac},
                                        {"address", n.address},
                                        {"link", n.link_up ? "up" : "down"}});
    o["nics"] = std::move(nics);
    return json::serialize(o);
}

std::string render_status_text(const status_report& r) {
    const auto& s = r.st;
    std::string state(state_word(s));
    if (s.running && s.state) {
        state += " (pid " + std::to_string(s.pid.value_or(static_cast<pid_t>(s.state->pid))) +
                 ", " + std::string(qemu::to_string(s.state->accel)) +
                 (s.state->accel_fallback.empty()
                      ? std::string()
                      : " after KVM failed: " + terminal_safe(s.state->accel_fallback)) +
                 ", up " +
                 std::to_string(std::max<std::int64_t>(0, r.now - s.state->started_at)) + " s)";
    } else if (s.state && s.state->last_end != qemu::end_reason::none) {
        state += " (last end: " + std::string(qemu::to_string(s.state->last_end));
        if (!s.state->last_end_detail.empty())
            state += ", " + s.state->last_end_detail;
        if (s.state->stopped_by != qemu::stop_step::none)
            state += ", by " + std::string(qemu::to_string(s.state->stopped_by));
        state += ")";
    }
    std::string out = "name:     " + r.name + "\nstate:    " + state + "\n";
    if (s.running && s.state) {
        std::string ports;
        for (const auto& p : s.state->ports)
            ports += (ports.empty() ? "" : ", ") + forward_text(p);
        out += "ports:    " + (ports.empty() ? std::string("none") : ports) + "\n";
        out += "monitor:  " +
               (s.monitor ? r.files.monitor_socket.string() + " (localvm monitor " + r.name + ")"
                          : std::string("none (started without --monitor)")) +
               "\n";
        for (const auto& n : s.state->nics)
            out += "network:  " + n.network + ": " + n.id + " " + n.mac +
                   (n.address.empty() ? std::string() : " " + n.address) + ", link " +
                   (n.link_up ? "up" : "down") + "\n";
    }
    out += "data:     " + r.files.data.string() + "\nruntime:  " + r.files.runtime.string() +
           "\nconsole:  " + r.files.console_log.string() + "\n";
    return out;
}

std::string render_list_json(const std::vector<qemu::vm_listing>& vms, std::int64_t now) {
    json::array list;
    for (const auto& v : vms) {
        const auto& s = v.st;
        json::object o;
        o["name"] = v.name;
        o["state"] = state_word(s);
        o["exists"] = s.exists;
        o["running"] = s.running;
        o["pid"] = pid_json(s);
        o["accelerator"] = accel_json(s);
        o["accelerator_fallback"] = fallback_json(s);
        o["uptime_seconds"] = uptime_json(s, now);
        o["ports"] = ports_json(s);
        o["monitor"] = s.monitor;
        o["monitor_socket"] =
            s.monitor ? json::value(v.files.monitor_socket.string()) : json::value(nullptr);
        o["last_end"] = s.state ? qemu::to_string(s.state->last_end) : "none";
        o["last_end_detail"] = s.state ? s.state->last_end_detail : "";
        o["ended_at"] = !s.running && s.state && s.state->ended_at > 0
                            ? json::value(s.state->ended_at)
                            : json::value(nullptr);
        o["stopped_by"] = stopped_by_json(s);
        list.push_back(std::move(o));
    }
    json::object root;
    root["vms"] = std::move(list);
    return json::serialize(root);
}

std::string render_list_table(const std::vector<qemu::vm_listing>& vms, std::int64_t now) {
    if (vms.empty())
        return "no VMs\n";
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "STATE", "PID", "ACCEL", "UPTIME", "FORWARDS", "LAST END"}};
    for (const auto& v : vms) {
        const auto& s = v.st;
        const bool live = localvm::cli::live(s);
        std::string fwd;
        if (live)
            for (const auto& p : s.state->ports)
                fwd += (fwd.empty() ? "" : ",") + p.host_address + ":" +
                       std::to_string(p.host_port) + "->" + std::to_string(p.guest_port);
        std::string end = "-";
        if (s.state && s.state->last_end != qemu::end_reason::none)
            end = std::string(qemu::to_string(s.state->last_end)) +
                  (s.state->stopped_by != qemu::stop_step::none
                       ? " (" + std::string(qemu::to_string(s.state->stopped_by)) + ")"
                       : std::string());
        std::string accel = live ? std::string(qemu::to_string(s.state->accel)) : "-";
        if (live && !s.state->accel_fallback.empty())
            accel += "*"; // after a KVM attempt: `status` says why
        rows.push_back({v.name, std::string(state_word(s)),
                        s.running && s.pid ? std::to_string(*s.pid) : "-", accel,
                        live ? std::to_string(std::max<std::int64_t>(0, now - s.state->started_at)) +
                                   "s"
                             : "-",
                        fwd.empty() ? "-" : fwd, end});
    }
    return render_table(rows);
}

std::string render_table(const std::vector<std::vector<std::string>>& rows) {
    if (rows.empty())
        return {};
    std::vector<std::size_t> width(rows[0].size(), 0);
    for (const auto& r : rows)
        for (std::size_t c = 0; c < r.size() && c < width.size(); ++c)
            width[c] = std::max(width[c], r[c].size());
    std::string out;
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t c = 0; c < r.size(); ++c)
            line += c + 1 < r.size() && c < width.size() ? pad(r[c], width[c] + 2) : r[c];
        out += terminal_safe(line) + "\n";
    }
    return out;
}

std::string render_network_list(
    const std::vector<std::pair<std::string, qemu::network_status>>& networks) {
    if (networks.empty())
        return "no networks\n";
    std::string out;
    for (const auto& [name, st] : networks) {
        out += name + "  " +
               (st.switch_pid ? "switch pid " + std::to_string(*st.switch_pid)
                              : std::string("switch stopped")) +
               "  members:";
        if (st.members.empty())
            out += " none";
        for (std::size_t k = 0; k < st.members.size(); ++k) {
            const auto& m = st.members[k];
            out += std::string(k ? ", " : " ") + m.vm +
                   (m.address.empty() ? std::string() : " " + m.address) +
                   (m.running ? " (running)" : " (stopped)");
        }
        out += "\n";
    }
    return terminal_safe(out);
}

std::string status_line(std::chrono::milliseconds elapsed, std::string_view stage,
                        std::string_view console, std::size_t width) {
    char head[32];
    std::snprintf(head, sizeof head, "[%6.1fs] ", static_cast<double>(elapsed.count()) / 1000.0);
    std::string line = head + terminal_safe(stage);
    if (!console.empty())
        line += " | " + terminal_safe(console);
    if (code_points(line) <= width)
        return line;
    if (width == 0)
        return {};
    line.resize(prefix_bytes(line, width - 1));
    return line + "\u2026";
}

} // namespace localvm::cli
