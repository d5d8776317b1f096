#include <localvm/error.hpp>
#include <localvm/qemu/state.hpp>

#include <boost/json.hpp>

#include <csignal>

namespace localvm::qemu {
namespace json = boost::json;

std::string_view to_string(end_reason r) noexcept {
    switch (r) {
    case end_reason::none: return "none";
    case end_reason::stopped: return "stopped";
    case end_reason::guest_shutdown: return "guest-shutdown";
    case end_reason::crashed: return "crashed";
    case end_reason::killed: return "killed";
    }
    return "none";
}

std::string_view to_string(stop_step s) noexcept {
    switch (s) {
    case stop_step::none: return "none";
    case stop_step::powerdown: return "powerdown";
    case stop_step::agent: return "agent";
    case stop_step::quit: return "quit";
    case stop_step::sigterm: return "sigterm";
    case stop_step::sigkill: return "sigkill";
    }
    return "none";
}

std::string render_state(const vm_state& s) {
    json::array ports;
    for (const auto& p : s.ports)
        ports.push_back(json::object{{"host_address", p.host_address},
                                     {"host_port", p.host_port},
                                     {"guest_port", p.guest_port}});
    json::object o{{"pid", s.pid},
                   {"accelerator", to_string(s.accel)},
                   {"ports", std::move(ports)},
                   {"started_at", s.started_at},
                   {"stopping", s.stopping},
                   {"last_end", to_string(s.last_end)},
                   {"last_end_detail", s.last_end_detail},
                   {"ended_at", s.ended_at},
                   {"stopped_by", to_string(s.stopped_by)}};
    if (!s.accel_fallback.empty())
        o["accel_fallback"] = s.accel_fallback;
    if (!s.nics.empty()) {
        json::array nics;
        for (const auto& n : s.nics)
            nics.push_back(json::object{{"network", n.network},
                                        {"id", n.id},
                                        {"mac", n.mac},
                                        {"address", n.address},
                                        {"link_up", n.link_up}});
        o["nics"] = std::move(nics);
    }
    return json::serialize(o) + "\n";
}

std::optional<vm_state> parse_state(std::string_view text, boost::system::error_code& ec) {
    ec = make_error_code(errc::protocol_error);
    json::error_code jec;
    auto v = json::parse(text, jec);
    if (jec || !v.is_object())
        return std::nullopt;
    const auto& o = v.get_object();
    vm_state s;
    auto int_of = [&](const char* key, std::int64_t& out) {
        if (auto* p = o.if_contains(key); p && p->is_int64())
            out = p->get_int64();
        else if (p && p->is_uint64())
            out = static_cast<std::int64_t>(p->get_uint64());
        else
            return false;
        return true;
    };
    if (!int_of("pid", s.pid) || !int_of("started_at", s.started_at))
        return std::nullopt;
    int_of("ended_at", s.ended_at);
    if (auto* a = o.if_contains("accelerator"); a && a->is_string())
        s.accel = a->get_string() == "kvm" ? accelerator::kvm : accelerator::tcg;
    if (auto* st = o.if_contains("stopping"); st && st->is_bool())
        s.stopping = st->get_bool();
    if (auto* e = o.if_contains("last_end"); e && e->is_string()) {
        for (auto r : {end_reason::stopped, end_reason::guest_shutdown, end_reason::crashed,
                       end_reason::killed})
            if (e->get_string() == to_string(r))
                s.last_end = r;
    }
    if (auto* b = o.if_contains("stopped_by"); b && b->is_string()) {
        for (auto step : {stop_step::powerdown, stop_step::agent, stop_step::quit, stop_step::sigterm,
                          stop_step::sigkill})
            if (b->get_string() == to_string(step))
                s.stopped_by = step;
    }
    if (auto* d = o.if_contains("last_end_detail"); d && d->is_string())
        s.last_end_detail = std::string(d->get_string());
    if (auto* f = o.if_contains("accel_fallback"); f && f->is_string())
        s.accel_fallback = std::string(f->get_string());
    if (auto* ps = o.if_contains("ports"); ps && ps->is_array()) {
        for (const auto& pv : ps->get_array()) {
            if (!pv.is_object())
                return std::nullopt;
            const auto& po = pv.get_object();
            auto* ha = po.if_contains("host_address");
            auto* hp = po.if_contains("host_port");
            auto* gp = po.if_contains("guest_port");
            if (!ha || !ha->is_string() || !hp || !hp->is_number() || !gp || !gp->is_number())
                return std::nullopt;
            port_forward f;
            f.host_address = std::string(ha->get_string());
            f.host_port = static_cast<std::uint16_t>(hp->to_number<std::int64_t>());
            f.guest_port = static_cast<std::uint16_t>(gp->to_number<std::int64_t>());
            s.ports.push_back(std::move(f));
        }
    }
    if (auto* ns = o.if_contains("nics"); ns && ns->is_array()) {
        for (const auto& nv : ns->get_array()) {
            const auto* no = nv.if_object();
            if (!no)
                return std::nullopt;
            auto str = [&](const char* key, std::string& out) {
                auto* x = no->if_contains(key);
                if (!x || !x->is_string())
                    return false;
                out = std::string(x->get_string());
                return true;
            };
            nic_state n;
            auto* up = no->if_contains("link_up");
            if (!str("network", n.network) || !str("id", n.id) || !str("mac", n.mac) ||
                !str("address", n.address) || !up || !up->is_bool())
                return std::nullopt;
            n.link_up = up->get_bool();
            s.nics.push_back(std::move(n));
        }
    }
    ec = {};
    return s;
}

end_reason classify_end(std::string_view how, int number, bool stopping) noexcept {
    if (stopping)
        return end_reason::stopped;
    if (how == "exited")
        return number == 0 ? end_reason::guest_shutdown : end_reason::crashed;
    if (how == "signaled")
        return number == SIGKILL ? end_reason::killed : end_reason::crashed;
    return end_reason::crashed;
}

} // namespace localvm::qemu
