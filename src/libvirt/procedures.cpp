#include <localvm/libvirt/procedures.hpp>

#include <string_view>

namespace localvm::libvirt {

namespace {

// REMOTE_AUTH_TYPE_LIST_MAX
constexpr std::uint32_t auth_type_list_max = 20;

void put_uuid(xdr::writer& w, const uuid& u) {
    w.fixed_opaque(std::string_view(reinterpret_cast<const char*>(u.data()), u.size()));
}

} // namespace

void put(xdr::writer& w, const domain_ref& v) {
    w.string(v.name);
    put_uuid(w, v.uuid);
    w.i32(v.id);
}
void get(xdr::reader& r, domain_ref& v) {
    v.name = r.string();
    v.uuid = r.fixed_opaque<16>();
    v.id = r.i32();
}

void put(xdr::writer& w, const pool_ref& v) {
    w.string(v.name);
    put_uuid(w, v.uuid);
}
void get(xdr::reader& r, pool_ref& v) {
    v.name = r.string();
    v.uuid = r.fixed_opaque<16>();
}

void put(xdr::writer& w, const vol_ref& v) {
    w.string(v.pool);
    w.string(v.name);
    w.string(v.key);
}
void get(xdr::reader& r, vol_ref& v) {
    v.pool = r.string();
    v.name = r.string();
    v.key = r.string();
}

void put(xdr::writer& w, const connect_open_args& v) {
    w.optional_string(v.name);
    w.u32(v.flags);
}
void get(xdr::reader& r, connect_open_args& v) {
    v.name = r.optional_string();
    v.flags = r.u32();
}

void put(xdr::writer& w, const auth_list_ret& v) {
    w.u32(static_cast<std::uint32_t>(v.types.size()));
    for (auto t : v.types)
        w.i32(t);
}
void get(xdr::reader& r, auth_list_ret& v) {
    auto n = r.u32_at_most(auth_type_list_max, "auth type count");
    v.types.clear();
    for (std::uint32_t i = 0; i < n && !r.failed(); ++i)
        v.types.push_back(r.i32());
}

void put(xdr::writer& w, const connect_get_version_ret& v) {
    w.u64(v.hv_ver);
}
void get(xdr::reader& r, connect_get_version_ret& v) {
    v.hv_ver = r.u64();
}

void put(xdr::writer& w, const string_value& v) {
    w.string(v.value);
}
void get(xdr::reader& r, string_value& v) {
    v.value = r.string();
}

void put(xdr::writer& w, const domain_value& v) {
    put(w, v.dom);
}
void get(xdr::reader& r, domain_value& v) {
    get(r, v.dom);
}

void put(xdr::writer& w, const domain_flags_args& v) {
    put(w, v.dom);
    w.u32(v.flags);
}
void get(xdr::reader& r, domain_flags_args& v) {
    get(r, v.dom);
    v.flags = r.u32();
}

void put(xdr::writer& w, const domain_create_xml_args& v) {
    w.string(v.xml_desc);
    w.u32(v.flags);
}
void get(xdr::reader& r, domain_create_xml_args& v) {
    v.xml_desc = r.string();
    v.flags = r.u32();
}

void put(xdr::writer& w, const domain_get_state_ret& v) {
    w.i32(v.state);
    w.i32(v.reason);
}
void get(xdr::reader& r, domain_get_state_ret& v) {
    v.state = r.i32();
    v.reason = r.i32();
}

void put(xdr::writer& w, const domain_get_info_ret& v) {
    w.u32(v.state);
    w.u64(v.max_mem);
    w.u64(v.memory);
    w.u32(v.nr_virt_cpu);
    w.u64(v.cpu_time);
}
void get(xdr::reader& r, domain_get_info_ret& v) {
    v.state = static_cast<std::uint8_t>(r.u32_at_most(0xff, "unsigned char"));
    v.max_mem = r.u64();
    v.memory = r.u64();
    v.nr_virt_cpu = static_cast<std::uint16_t>(r.u32_at_most(0xffff, "unsigned short"));
    v.cpu_time = r.u64();
}

void put(xdr::writer& w, const event_register_any_args& v) {
    w.i32(v.event_id);
    w.boolean(v.dom.has_value());
    if (v.dom)
        put(w, *v.dom);
}
void get(xdr::reader& r, event_register_any_args& v) {
    v.event_id = r.i32();
    v.dom.reset();
    if (r.boolean()) {
        v.dom.emplace();
        get(r, *v.dom);
    }
}

void put(xdr::writer& w, const callback_id_value& v) {
    w.i32(v.callback_id);
}
void get(xdr::reader& r, callback_id_value& v) {
    v.callback_id = r.i32();
}

void put(xdr::writer& w, const lifecycle_msg& v) {
    w.i32(v.callback_id);
    put(w, v.dom);
    w.i32(v.event);
    w.i32(v.detail);
}
void get(xdr::reader& r, lifecycle_msg& v) {
    v.callback_id = r.i32();
    get(r, v.dom);
    v.event = r.i32();
    v.detail = r.i32();
}

void put(xdr::writer& w, const domain_open_console_args& v) {
    put(w, v.dom);
    w.optional_string(v.dev_name);
    w.u32(v.flags);
}
void get(xdr::reader& r, domain_open_console_args& v) {
    get(r, v.dom);
    v.dev_name = r.optional_string();
    v.flags = r.u32();
}

void put(xdr::writer& w, const pool_value& v) {
    put(w, v.pool);
}
void get(xdr::reader& r, pool_value& v) {
    get(r, v.pool);
}

void put(xdr::writer& w, const vol_create_xml_args& v) {
    put(w, v.pool);
    w.string(v.xml);
    w.u32(v.flags);
}
void get(xdr::reader& r, vol_create_xml_args& v) {
    get(r, v.pool);
    v.xml = r.string();
    v.flags = r.u32();
}

void put(xdr::writer& w, const vol_value& v) {
    put(w, v.vol);
}
void get(xdr::reader& r, vol_value& v) {
    get(r, v.vol);
}

void put(xdr::writer& w, const vol_flags_args& v) {
    put(w, v.vol);
    w.u32(v.flags);
}
void get(xdr::reader& r, vol_flags_args& v) {
    get(r, v.vol);
    v.flags = r.u32();
}

void put(xdr::writer& w, const vol_lookup_by_name_args& v) {
    put(w, v.pool);
    w.string(v.name);
}
void get(xdr::reader& r, vol_lookup_by_name_args& v) {
    get(r, v.pool);
    v.name = r.string();
}

void put(xdr::writer& w, const vol_upload_args& v) {
    put(w, v.vol);
    w.u64(v.offset);
    w.u64(v.length);
    w.u32(v.flags);
}
void get(xdr::reader& r, vol_upload_args& v) {
    get(r, v.vol);
    v.offset = r.u64();
    v.length = r.u64();
    v.flags = r.u32();
}

void put(xdr::writer& w, const monitor_command_args& v) {
    put(w, v.dom);
    w.string(v.cmd);
    w.u32(v.flags);
}
void get(xdr::reader& r, monitor_command_args& v) {
    get(r, v.dom);
    v.cmd = r.string();
    v.flags = r.u32();
}

} // namespace localvm::libvirt
