// The libvirt procedures localvm uses: numbers, argument and return structs,
// their XDR encoding. Written from libvirt's remote_protocol.x and
// qemu_protocol.x; each struct keeps the protocol's field order.
#pragma once

#include <localvm/libvirt/xdr.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace localvm::libvirt {

/// Procedure numbers of `remote_program` (`REMOTE_PROC_*`).
enum class remote_procedure : std::int32_t {
    connect_open = 1,
    connect_close = 2,
    connect_get_version = 4,
    node_get_info = 6,
    connect_get_capabilities = 7,
    domain_create = 9,
    domain_create_xml = 10,
    domain_define_xml = 11,
    domain_get_xml_desc = 14,
    domain_get_info = 16,
    domain_lookup_by_name = 23,
    domain_undefine = 35,
    connect_get_hostname = 59,
    auth_list = 66,
    storage_pool_lookup_by_name = 84,
    storage_vol_create_xml = 93,
    storage_vol_delete = 94,
    storage_vol_lookup_by_name = 95,
    storage_vol_get_xml_desc = 99,
    storage_vol_get_path = 100,
    node_get_free_memory = 102,
    domain_open_console = 201,
    storage_vol_upload = 208,
    domain_get_state = 212,
    domain_destroy_flags = 234,
    domain_shutdown_flags = 258,
    connect_domain_event_callback_register_any = 316,
    connect_domain_event_callback_deregister_any = 317,
    domain_event_callback_lifecycle = 318, ///< A message (event), not a call.
};

/// Procedure numbers of `qemu_program` (`QEMU_PROC_*`).
enum class qemu_procedure : std::int32_t {
    domain_monitor_command = 1,
};

/// A domain's UUID, 16 raw bytes.
using uuid = std::array<std::uint8_t, 16>;

/// `remote_nonnull_domain`: how the protocol names a domain.
struct domain_ref {
    std::string name;
    libvirt::uuid uuid{};
    std::int32_t id = -1; ///< The running domain's id; -1 when it is not running.
    friend bool operator==(const domain_ref&, const domain_ref&) = default;
};

/// `remote_nonnull_storage_pool`.
struct pool_ref {
    std::string name;
    libvirt::uuid uuid{};
    friend bool operator==(const pool_ref&, const pool_ref&) = default;
};

/// `remote_nonnull_storage_vol`.
struct vol_ref {
    std::string pool; ///< The pool's name.
    std::string name; ///< The volume's name within the pool.
    std::string key;  ///< Its unique key (for file volumes, the path).
    friend bool operator==(const vol_ref&, const vol_ref&) = default;
};

/// `remote_connect_open_args`.
struct connect_open_args {
    std::optional<std::string> name; ///< The URI the daemon should open, e.g. "qemu:///system".
    std::uint32_t flags = 0;
};

/// `remote_auth_list_ret`: `remote_auth_type` values (0 none, 1 SASL, 2 polkit).
struct auth_list_ret {
    std::vector<std::int32_t> types;
};

/// `remote_connect_get_version_ret`: major * 1000000 + minor * 1000 + micro.
struct connect_get_version_ret {
    std::uint64_t hv_ver = 0;
};

/// One `remote_nonnull_string`: the whole of many args and rets
/// (hostname, capabilities, define-xml's xml, lookup-by-name's name,
/// get-xml-desc's xml, vol get-path's name, monitor command's result).
struct string_value {
    std::string value;
};

/// One `remote_nonnull_domain`: e.g. domain create, undefine, get-info args;
/// define-xml, create-xml, lookup-by-name rets.
struct domain_value {
    domain_ref dom;
};

/// A domain and flags: get-state, shutdown-flags, destroy-flags, get-xml-desc args.
struct domain_flags_args {
    domain_ref dom;
    std::uint32_t flags = 0;
};

/// `remote_domain_create_xml_args`.
struct domain_create_xml_args {
    std::string xml_desc;
    std::uint32_t flags = 0;
};

/// `remote_domain_get_state_ret`.
struct domain_get_state_ret {
    std::int32_t state = 0;  ///< `virDomainState`.
    std::int32_t reason = 0; ///< Its state-specific reason.
};

/// `remote_domain_get_info_ret`.
struct domain_get_info_ret {
    std::uint8_t state = 0;    ///< `virDomainState`.
    std::uint64_t max_mem = 0; ///< KiB.
    std::uint64_t memory = 0;  ///< KiB.
    std::uint16_t nr_virt_cpu = 0;
    std::uint64_t cpu_time = 0; ///< Nanoseconds.
};

/// `remote_node_get_info_ret`: the host's CPUs and memory.
struct node_get_info_ret {
    /// e.g. "x86_64"; on the wire `char model[32]`, each char an XDR int,
    /// cut at the first NUL.
    std::string model;
    std::uint64_t memory_kib = 0; ///< Total memory, KiB.
    std::int32_t cpus = 0;        ///< Active CPUs.
    std::int32_t mhz = 0;
    std::int32_t nodes = 0; ///< NUMA nodes.
    std::int32_t sockets = 0;
    std::int32_t cores = 0;
    std::int32_t threads = 0;
};

/// `remote_node_get_free_memory_ret`.
struct node_get_free_memory_ret {
    std::uint64_t free_bytes = 0; ///< Free memory of the host, bytes.
};

/// `remote_connect_domain_event_callback_register_any_args`.
struct event_register_any_args {
    std::int32_t event_id = 0;     ///< `virDomainEventID`; 0 is lifecycle.
    std::optional<domain_ref> dom; ///< Only this domain's events; every domain's when empty.
};

/// A callback id alone: register-any ret, deregister-any args.
struct callback_id_value {
    std::int32_t callback_id = 0;
};

/// `remote_domain_event_callback_lifecycle_msg`.
struct lifecycle_msg {
    std::int32_t callback_id = 0;
    domain_ref dom;
    std::int32_t event = 0;  ///< `virDomainEventType`.
    std::int32_t detail = 0; ///< Its event-specific detail.
};

/// `remote_domain_open_console_args`.
struct domain_open_console_args {
    domain_ref dom;
    std::optional<std::string> dev_name; ///< e.g. "serial0"; the first console when empty.
    std::uint32_t flags = 0;
};

/// One `remote_nonnull_storage_pool`: pool lookup-by-name ret.
struct pool_value {
    pool_ref pool;
};

/// `remote_storage_vol_create_xml_args`.
struct vol_create_xml_args {
    pool_ref pool;
    std::string xml;
    std::uint32_t flags = 0;
};

/// One `remote_nonnull_storage_vol`: create-xml and lookup rets, get-path args.
struct vol_value {
    vol_ref vol;
};

/// A volume and flags: vol delete and vol get-xml-desc args.
struct vol_flags_args {
    vol_ref vol;
    std::uint32_t flags = 0;
};

/// `remote_storage_vol_lookup_by_name_args`.
struct vol_lookup_by_name_args {
    pool_ref pool;
    std::string name;
};

/// `remote_storage_vol_upload_args`.
struct vol_upload_args {
    vol_ref vol;
    std::uint64_t offset = 0; ///< Bytes.
    std::uint64_t length = 0; ///< Bytes; 0 means up to the end of the volume.
    std::uint32_t flags = 0;
};

/// `qemu_domain_monitor_command_args`.
struct monitor_command_args {
    domain_ref dom;
    std::string cmd;
    std::uint32_t flags = 0; ///< 1: `cmd` is HMP rather than QMP JSON.
};

// XDR for each struct above (and the refs): `put` appends, `get` reads.
#define LOCALVM_LIBVIRT_XDR(T)                                                                     \
    void put(xdr::writer& w, const T& v);                                                          \
    void get(xdr::reader& r, T& v);
LOCALVM_LIBVIRT_XDR(domain_ref)
LOCALVM_LIBVIRT_XDR(pool_ref)
LOCALVM_LIBVIRT_XDR(vol_ref)
LOCALVM_LIBVIRT_XDR(connect_open_args)
LOCALVM_LIBVIRT_XDR(auth_list_ret)
LOCALVM_LIBVIRT_XDR(connect_get_version_ret)
LOCALVM_LIBVIRT_XDR(string_value)
LOCALVM_LIBVIRT_XDR(domain_value)
LOCALVM_LIBVIRT_XDR(domain_flags_args)
LOCALVM_LIBVIRT_XDR(domain_create_xml_args)
LOCALVM_LIBVIRT_XDR(domain_get_state_ret)
LOCALVM_LIBVIRT_XDR(domain_get_info_ret)
LOCALVM_LIBVIRT_XDR(node_get_info_ret)
LOCALVM_LIBVIRT_XDR(node_get_free_memory_ret)
LOCALVM_LIBVIRT_XDR(event_register_any_args)
LOCALVM_LIBVIRT_XDR(callback_id_value)
LOCALVM_LIBVIRT_XDR(lifecycle_msg)
LOCALVM_LIBVIRT_XDR(domain_open_console_args)
LOCALVM_LIBVIRT_XDR(pool_value)
LOCALVM_LIBVIRT_XDR(vol_create_xml_args)
LOCALVM_LIBVIRT_XDR(vol_value)
LOCALVM_LIBVIRT_XDR(vol_flags_args)
LOCALVM_LIBVIRT_XDR(vol_lookup_by_name_args)
LOCALVM_LIBVIRT_XDR(vol_upload_args)
LOCALVM_LIBVIRT_XDR(monitor_command_args)
#undef LOCALVM_LIBVIRT_XDR

/// The XDR bytes of `v`. Never throws beyond std::bad_alloc.
template <class T> std::string encode(const T& v) {
    std::string out;
    xdr::writer w(out);
    put(w, v);
    return out;
}

/// Decodes a whole payload as a `T`; nullopt, with `problem` naming the
/// failure and its offset, when it is not exactly one (trailing bytes are a
/// failure). Never throws beyond std::bad_alloc.
template <class T> std::optional<T> decode(std::string_view payload, std::string& problem) {
    xdr::reader r(payload);
    T v{};
    get(r, v);
    r.expect_end();
    if (r.failed()) {
        problem = r.problem();
        return std::nullopt;
    }
    return v;
}

} // namespace localvm::libvirt
