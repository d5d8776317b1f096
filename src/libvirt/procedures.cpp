#include <localvm/libvirt/procedures.hpp>

#include <string_view>

namespace localvm::libvirt {

namespace {

// REMOTE_AUTH_TYPE_LIST_MAX
constexpr std::uint32_t auth_type_list_max = 20;

void put_uuid(xdr::writer& w, const uuid& u) {
    w.fixed_opaque(std::string_view(reinterpret_cast<const char*>(u.data()), u.size()));
}

// Most structs are a plain sequence of fields: one list per struct, in
// wire order, drives both directions, so that writing and reading cannot
// drift apart. `out` writes a field, `in` reads it; a field that is itself
// one of these structs goes through its own put/get.
struct out {
    xdr::writer& w;
    void operator()(const std::string& s) { w.string(s); }
    void operator()(const std::optional<std::string>& s) { w.optional_string(s); }
    void operator()(std::int32_t x) { w.i32(x); }
    void operator()(std::uint32_t x) { w.u32(x); }
    void operator()(std::uint64_t x) { w.u64(x); }
    void operator()(const uuid& u) { put_uuid(w, u); }
    template <class S> void operator()(const S& nested) { put(w, nested); }
};
struct in {
    xdr::reader& r;
    void operator()(std::string& s) { s = r.string(); }
    void operator()(std::optional<std::string>& s) { s = r.optional_string(); }
    void operator()(std::int32_t& x) { x = r.i32(); }
    void operator()(std::uint32_t& x) { x = r.u32(); }
    void operator()(std::uint64_t& x) { x = r.u64(); }
    void operator()(uuid& u) { u = r.fixed_opaque<16>(); }
    template <class S> void operator()(S& nested) { get(r, nested); }
};

} // namespace

#define LOCALVM_XDR_FIELDS(T, ...)                                                                 \
    void put(xdr::writer& w, const T& v) {                                                         \
        out io{w};                                                                                 \
        __VA_ARGS__                                                                                \
    }                                                                                              \
    void get(xdr::reader& r, T& v) {                                                               \
        in io{r};                                                                                  \
        __VA_ARGS__                                                                                \
    }
// clang-format off
LOCALVM_XDR_FIELDS(domain_ref, io(v.name); io(v.uuid); io(v.id);)
LOCALVM_XDR_FIELDS(pool_ref, io(v.name); io(v.uuid);)
LOCALVM_XDR_FIELDS(vol_ref, io(v.pool); io(v.name); io(v.key);)
LOCALVM_XDR_FIELDS(connect_open_args, io(v.name); io(v.flags);)
LOCALVM_XDR_FIELDS(connect_get_version_ret, io(v.hv_ver);)
LOCALVM_XDR_FIELDS(node_get_free_memory_ret, io(v.free_bytes);)
LOCALVM_XDR_FIELDS(string_value, io(v.value);)
LOCALVM_XDR_FIELDS(domain_value, io(v.dom);)
LOCALVM_XDR_FIELDS(domain_flags_args, io(v.dom); io(v.flags);)
LOCALVM_XDR_FIELDS(domain_create_xml_args, io(v.xml_desc); io(v.flags);)
LOCALVM_XDR_FIELDS(domain_get_state_ret, io(v.state); io(v.reason);)
LOCALVM_XDR_FIELDS(callback_id_value, io(v.callback_id);)
LOCALVM_XDR_FIELDS(lifecycle_msg, io(v.callback_id); io(v.dom); io(v.event); io(v.detail);)
LOCALVM_XDR_FIELDS(domain_open_console_args, io(v.dom); io(v.dev_name); io(v.flags);)
LOCALVM_XDR_FIELDS(pool_value, io(v.pool);)
LOCALVM_XDR_FIELDS(vol_create_xml_args, io(v.pool); io(v.xml); io(v.flags);)
LOCALVM_XDR_FIELDS(vol_value, io(v.vol);)
LOCALVM_XDR_FIELDS(vol_flags_args, io(v.vol); io(v.flags);)
LOCALVM_XDR_FIELDS(vol_lookup_by_name_args, io(v.pool); io(v.name);)
LOCALVM_XDR_FIELDS(vol_upload_args, io(v.vol); io(v.offset); io(v.length); io(v.flags);)
LOCALVM_XDR_FIELDS(monitor_command_args, io(v.dom); io(v.cmd); io(v.flags);)
// clang-format on
#undef LOCALVM_XDR_FIELDS

// The structs that are more than a sequence of fields.

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

// `char model[32]`: rpcgen's xdr_vector of xdr_char, four bytes a char.
constexpr std::size_t node_model_length = 32;

void put(xdr::writer& w, const node_get_info_ret& v) {
    for (std::size_t i = 0; i < node_model_length; ++i)
        w.i32(i < v.model.size() ? static_cast<signed char>(v.model[i]) : 0);
    w.u64(v.memory_kib);
    for (auto x : {v.cpus, v.mhz, v.nodes, v.sockets, v.cores, v.threads})
        w.i32(x);
}
void get(xdr::reader& r, node_get_info_ret& v) {
    v.model.clear();
    bool ended = false;
    for (std::size_t i = 0; i < node_model_length; ++i) {
        auto c = r.i32();
        if (c == 0)
            ended = true;
        else if (!ended)
            v.model.push_back(static_cast<char>(c));
    }
    v.memory_kib = r.u64();
    for (auto* x : {&v.cpus, &v.mhz, &v.nodes, &v.sockets, &v.cores, &v.threads})
        *x = r.i32();
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

} // namespace localvm::libvirt
