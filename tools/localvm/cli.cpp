#include "cli.hpp"

#include <localvm/error.hpp>
#include <localvm/libvirt/uri.hpp>
#include <localvm/qemu/forward.hpp>
#include <localvm/qemu/network.hpp>
#include <localvm/qemu/options.hpp>

#include <charconv>
#include <functional>

namespace localvm::cli {
namespace {

using mask = unsigned;
constexpr mask bit(command c) {
    return 1u << static_cast<unsigned>(c);
}

constexpr mask vm_commands = bit(command::create) | bit(command::start) | bit(command::up) |
                             bit(command::status) | bit(command::shell) | bit(command::console) |
                             bit(command::monitor) | bit(command::sync) | bit(command::copy) |
                             bit(command::forward) | bit(command::stop) | bit(command::remove);
// Commands that read the data and runtime directories.
constexpr mask dir_commands = vm_commands | bit(command::list) | bit(command::network) |
                              bit(command::snapshot) | bit(command::clone);
constexpr mask boot_commands = bit(command::start) | bit(command::up);
constexpr mask copy_commands = bit(command::sync) | bit(command::copy);
constexpr mask login_commands = boot_commands | bit(command::shell) | copy_commands;
constexpr mask create_commands = bit(command::create) | bit(command::up);
constexpr mask all_commands =
    dir_commands | bit(command::cidata) | bit(command::image);
constexpr mask fetch_commands = create_commands | bit(command::image);

struct subcommand {
    command cmd;
    std::string_view word;
    std::string_view operands; // for the usage line
    std::string_view summary;
};

const subcommand subcommands[] = {
    {command::create, "create", "NAME --base IMAGE",
     "Create the VM's disk as a qcow2 overlay on a base image."},
    {command::start, "start", "NAME",
     "Boot the VM; returns once QEMU runs (the VM outlives this command)."},
    {command::up, "up", "NAME [-- COMMAND...]",
     "Create the VM if needed, start it if needed, wait until SSH works,\n"
     "then run COMMAND in it (its exit status is up's) and show the boot timeline."},
    {command::status, "status", "NAME", "Show whether the VM runs, its pid, ports and files."},
    {command::shell, "shell", "NAME [-- COMMAND...]",
     "Run COMMAND in the guest over SSH (exit status: the command's), or open\n"
     "an interactive shell when none is given."},
    {command::console, "console", "NAME",
     "Attach the terminal to the VM's serial console; Ctrl-] detaches."},
    {command::monitor, "monitor", "NAME",
     "Attach the terminal to the VM's QEMU monitor (HMP); Ctrl-] detaches.\n"
     "The VM must have been started with --monitor. Type HMP commands such as\n"
     "'info status' or 'sendkey ctrl-alt-delete'; QEMU keeps running after you\n"
     "detach ('quit' there ends it; 'localvm stop' is the orderly way)."},
    {command::sync, "sync", "NAME FROM TO",
     "Copy the host path FROM to the guest path TO with rsync over SSH\n"
     "(a trailing '/' on FROM copies a folder's contents); with --from-guest,\n"
     "the guest path FROM to the host path TO."},
    {command::copy, "cp", "SOURCE DEST",
     "Copy files between the host and a VM with rsync over SSH, in either\n"
     "direction: one side is NAME:PATH (a path in the VM named NAME), the other\n"
     "a host path; folders are copied whole (a trailing '/' on SOURCE copies a\n"
     "folder's contents). Write a host path with a ':' before any '/' as ./PATH."},
    {command::forward, "forward", "NAME [[ADDR:]HOST:GUEST]",
     "Forward host port HOST (on ADDR, default 127.0.0.1; 0 picks a free port)\n"
     "to guest port GUEST on the running VM, until --remove or the VM stops;\n"
     "prints the forward (GUEST alone is 0:GUEST). Without a forward, lists\n"
     "the VM's forwards."},
    {command::list, "list", "",
     "List every VM under the data and runtime directories, one line each\n"
     "(--json: one JSON object with stable field names, see the README)."},
    {command::stop, "stop", "NAME",
     "Stop the VM: ACPI power button, then QMP quit, SIGTERM, SIGKILL."},
    {command::remove, "delete", "NAME", "Delete the VM's disk, seed and runtime files."},
    {command::snapshot, "snapshot", "NAME SNAP | list | delete SNAP",
     "Save the running VM NAME as snapshot SNAP: its memory, devices and disk\n"
     "as they are at that moment (the guest pauses for the save). The VM runs\n"
     "on afterwards, on its own disk (--stop ends it instead): saving is not\n"
     "meant to cost you the VM. 'snapshot save NAME SNAP' is the same (for a\n"
     "VM named list or delete). 'list' shows each snapshot: size, source VM,\n"
     "when it was made, the QEMU that saved it and the VMs cloned from it\n"
     "(--json: one JSON object, see the README). 'delete' removes one; it is\n"
     "refused while VMs cloned from it exist (delete those first)."},
    {command::clone, "clone", "SNAP NEW",
     "Create VM NEW from snapshot SNAP: its own disk on the snapshot's, and\n"
     "the source VM's login key. 'localvm start NEW' (or 'up NEW') then\n"
     "restores the saved machine instead of booting: the guest goes on from\n"
     "the moment of the save, in seconds. That start takes the snapshot's\n"
     "CPUs, memory, kernel, initrd, command line, networking and forwards\n"
     "(host port 0 again) unless given; options that differ are refused."},
    {command::image, "image", "pull URL | list | rm URL|KEY",
     "Manage the image cache: 'pull' fetches URL (http, https, file or a path)\n"
     "and verifies it with --sha256/--sha512 (for a .xz or .gz URL, the digest\n"
     "of the compressed file, as SHA*SUMS list it); 'list' shows the cached\n"
     "images; 'rm' removes one. LOCALVM_OFFLINE=1 forbids downloads."},
    {command::network, "network", "create NAME | delete NAME | list",
     "Manage virtual networks: Ethernet segments (a vde_switch each, on unix\n"
     "sockets, reachable from nothing but their VMs) that VMs join with\n"
     "'start --network NAME[=ADDR/PREFIX]'. 'delete' refuses a network a\n"
     "running VM is on; 'list' shows each network, its switch and members."},
    {command::cidata, "cidata", "OUTPUT [USER_DATA [META_DATA]]",
     "Write a NoCloud seed ISO (volume 'cidata') from files, like cloud-localds.\n"
     "Without META_DATA, meta-data is rendered from --instance-id, --hostname\n"
     "and --ssh-key."},
};

const subcommand* find_subcommand(command c) {
    for (const auto& s : subcommands)
        if (s.cmd == c)
            return &s;
    return nullptr;
}

// An option: its setter returns "" or what is wrong with the value.
struct option_spec {
    std::string_view name;
    char short_name;
    std::string_view metavar; // empty: a flag
    mask commands;
    std::string help;
    std::function<std::string(invocation&, const std::string&)> apply;
};

std::string in_quotes(const std::string& s) {
    return "\"" + s + "\"";
}

std::optional<unsigned long> parse_number(const std::string& s) {
    unsigned long v = 0;
    auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || err != std::errc() || end != s.data() + s.size())
        return std::nullopt;
    return v;
}

// A duration option: 1..86400 whole seconds; "" or what is wrong with `v`.
std::string parse_seconds(const std::string& v, std::chrono::seconds& out) {
    auto n = parse_number(v);
    if (!n || *n == 0 || *n > 86400)
        return "expected 1..86400 seconds, got " + in_quotes(v);
    out = std::chrono::seconds(*n);
    return {};
}

const std::vector<option_spec>& options_table() {
    static const std::vector<option_spec> table = [] {
        const start_options start_defaults;
        const qemu::options vm_defaults;
        std::vector<option_spec> t = {
            {"help", 'h', "", all_commands, "Show this help and exit.",
             [](invocation& i, const std::string&) {
                 i.help = true;
                 return std::string();
             }},
            {"quiet", 'q', "", all_commands, "Print nothing but errors (and a command's output).",
             [](invocation& i, const std::string&) {
                 i.level = verbosity::quiet;
                 return std::string();
             }},
            {"verbose", 'v', "", all_commands,
             "Also print lifecycle messages, QEMU's stderr and the serial console.",
             [](invocation& i, const std::string&) {
                 i.level = verbosity::verbose;
                 return std::string();
             }},
            {"data-dir", 0, "DIR", dir_commands,
             "Where VMs' disks live. Default: $XDG_DATA_HOME/localvm, else\n"
             "~/.local/share/localvm.",
             [](invocation& i, const std::string& v) {
                 i.data_dir = v;
                 return v.empty() ? std::string("expected a directory") : std::string();
             }},
            {"runtime-dir", 0, "DIR", dir_commands,
             "Where sockets, logs and state live. Default: $XDG_RUNTIME_DIR/localvm,\n"
             "else /tmp/localvm-UID.",
             [](invocation& i, const std::string& v) {
                 i.runtime_dir = v;
                 return v.empty() ? std::string("expected a directory") : std::string();
             }},
            {"connect", 0, "URI", vm_commands,
             "Run the VM through the libvirt daemon at URI (qemu:///system,\n"
             "qemu+unix:///system?socket=PATH, qemu+ssh://HOST/system?keyfile=KEY).\n"
             "Default: $LOCALVM_CONNECT, else QEMU run by localvm itself.",
             [](invocation& i, const std::string& v) {
                 std::string problem;
                 if (!libvirt::parse_uri(v, problem))
                     return "expected a libvirt URI, got " + in_quotes(v) + ": " + problem;
                 i.connect = v;
                 return std::string();
             }},
            {"pool", 0, "NAME", vm_commands,
             "With --connect: the libvirt storage pool of the VM's volumes.\n"
             "Default \"default\".",
             [](invocation& i, const std::string& v) {
                 i.pool = v;
                 return v.empty() ? std::string("expected a pool name") : std::string();
             }},
            {"base", 0, "IMAGE", create_commands,
             "Base image of the disk overlay (any format qemu-img reads).",
             [](invocation& i, const std::string& v) {
                 i.base = v;
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
            {"image", 0, "URL", create_commands,
             "Base image fetched from URL into the image cache (see 'localvm image'),\n"
             "instead of --base.",
             [](invocation& i, const std::string& v) {
                 i.image = v;
                 return v.empty() ? std::string("expected a URL") : std::string();
             }},
            {"sha256", 0, "HEX", fetch_commands,
             "The image's published SHA-256; the fetch fails on another.",
             [](invocation& i, const std::string& v) {
                 std::string problem;
                 i.image_digest = image::parse_digest(image::digest_algorithm::sha256, v, problem);
                 return problem;
             }},
            {"sha512", 0, "HEX", fetch_commands,
             "The image's published SHA-512 (Debian's SHA512SUMS); the fetch fails on\n"
             "another.",
             [](invocation& i, const std::string& v) {
                 std::string problem;
                 i.image_digest = image::parse_digest(image::digest_algorithm::sha512, v, problem);
                 return problem;
             }},
            {"cache-dir", 0, "DIR", fetch_commands,
             "The image cache. Default: $XDG_CACHE_HOME/localvm/images, else\n"
             "~/.cache/localvm/images.",
             [](invocation& i, const std::string& v) {
                 i.cache_dir = v;
                 return v.empty() ? std::string("expected a directory") : std::string();
             }},
            {"ca-file", 0, "FILE", fetch_commands,
             "Also trust the CA certificates in FILE (PEM) for https.",
             [](invocation& i, const std::string& v) {
                 i.ca_file = v;
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
            {"disk-size", 0, "SIZE", create_commands,
             "Virtual size of the overlay, e.g. 20G. Default: the base image's.",
             [](invocation& i, const std::string& v) {
                 i.disk_size = v;
                 return v.empty() ? std::string("expected a size") : std::string();
             }},
            {"kernel", 0, "FILE", boot_commands,
             "Boot this kernel directly (else UEFI firmware boots the disk).",
             [](invocation& i, const std::string& v) {
                 i.kernel = v;
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
            {"initrd", 0, "FILE", boot_commands, "Initial ramdisk for --kernel.",
             [](invocation& i, const std::string& v) {
                 i.initrd = v;
                 return std::string();
             }},
            {"cmdline", 0, "TEXT", boot_commands,
             "Kernel command line for --kernel (the serial console is added).",
             [](invocation& i, const std::string& v) {
                 i.cmdline = v;
                 return std::string();
             }},
            {"cpus", 0, "N", boot_commands,
             "Virtual CPUs, 1..255. Default " + std::to_string(start_defaults.cpus) + ".",
             [](invocation& i, const std::string& v) {
                 auto n = parse_number(v);
                 if (!n || *n < 1 || *n > 255)
                     return "expected 1..255, got " + in_quotes(v);
                 i.cpus = static_cast<unsigned>(*n);
                 return std::string();
             }},
            {"memory", 0, "SIZE", boot_commands,
             "Guest memory: 512M, 4G (a plain number is MiB). Default " + start_defaults.memory +
                 ".",
             [](invocation& i, const std::string& v) {
                 boost::system::error_code ec;
                 if (!qemu::parse_memory_mib(v, ec))
                     return "expected a size such as 512M or 4G, got " + in_quotes(v);
                 i.memory = v;
                 return std::string();
             }},
            {"forward", 0, "[ADDR:]HOST:GUEST", boot_commands,
             "Forward a host TCP port to a guest port; HOST 0 picks a free one.\n"
             "Repeatable. Default: 127.0.0.1:0:22 (SSH).",
             [](invocation& i, const std::string& v) {
                 boost::system::error_code ec;
                 auto f = qemu::parse_port_forward(v, ec);
                 if (!f)
                     return "expected [ADDR:]HOST_PORT:GUEST_PORT, got " + in_quotes(v);
                 i.forwards.push_back(*f);
                 return std::string();
             }},
            {"network", 0, "NAME[=ADDR/PREFIX]", boot_commands,
             "Join virtual network NAME (made with 'localvm network create') with\n"
             "one more NIC, optionally with a static IPv4 address (\"/24\" when no\n"
             "prefix); the guest's /etc/hosts lists the other members by name.\n"
             "Repeatable. Default: none.",
             [](invocation& i, const std::string& v) {
                 network_attachment a;
                 auto eq = v.find('=');
                 a.network = v.substr(0, eq);
                 if (auto problem = qemu::check_network_name(a.network); !problem.empty())
                     return problem;
                 if (eq != std::string::npos) {
                     std::string why;
                     if (!qemu::parse_ipv4_prefix(v.substr(eq + 1), why))
                         return why;
                     a.address = v.substr(eq + 1);
                 }
                 for (const auto& n : i.networks)
                     if (n.network == a.network)
                         return "network " + a.network + " is given twice";
                 i.networks.push_back(std::move(a));
                 return std::string();
             }},
            {"monitor", 0, "", boot_commands,
             "Give QEMU a human monitor (HMP, the '(qemu)' prompt) on a socket\n"
             "in the runtime directory; 'localvm monitor NAME' attaches the\n"
             "terminal to it (Ctrl-] detaches). Default: no monitor.",
             [](invocation& i, const std::string&) {
                 i.monitor = true;
                 return std::string();
             }},
            {"user-data", 0, "FILE", boot_commands,
             "cloud-init user-data for the NoCloud seed. Default: none.",
             [](invocation& i, const std::string& v) {
                 i.user_data = v;
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
            {"accel", 0, "auto|kvm|tcg", boot_commands,
             "Accelerator. Default auto: KVM where it really boots guests, else TCG\n"
             "(LOCALVM_ACCEL=kvm|tcg overrides auto).",
             [](invocation& i, const std::string& v) {
                 if (v == "auto" || v == "automatic")
                     i.accel = qemu::accelerator::automatic;
                 else if (v == "kvm")
                     i.accel = qemu::accelerator::kvm;
                 else if (v == "tcg")
                     i.accel = qemu::accelerator::tcg;
                 else
                     return "expected auto, kvm or tcg, got " + in_quotes(v);
                 return std::string();
             }},
            {"net", 0, "user|restricted", boot_commands,
             std::string("Networking: user (NAT) or restricted (only the forwards).\nDefault ") +
                 (vm_defaults.net == qemu::network::user ? "user" : "restricted") + ".",
             [](invocation& i, const std::string& v) {
                 if (v == "user")
                     i.net = qemu::network::user;
                 else if (v == "restricted")
                     i.net = qemu::network::restricted;
                 else
                     return "expected user or restricted, got " + in_quotes(v);
                 return std::string();
             }},
            {"qemu", 0, "FILE", boot_commands,
             "QEMU binary. Default: qemu-system-x86_64 from PATH.",
             [](invocation& i, const std::string& v) {
                 i.qemu_binary = v;
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
            {"identity", 0, "FILE", login_commands,
             "SSH private key (FILE.pub goes to the guest). Default: the VM's own\n"
             "DATA_DIR/NAME/id_ed25519, made on first start.",
             [](invocation& i, const std::string& v) {
                 i.identity = v;
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
            {"user", 0, "USER", login_commands,
             "Guest user to log in as. Default " + vm_defaults.ssh_user + ".",
             [](invocation& i, const std::string& v) {
                 i.user = v;
                 return v.empty() ? std::string("expected a user name") : std::string();
             }},
            {"timeout", 0, "SECONDS", bit(command::up),
             "How long to wait for SSH to work. Default 300.",
             [](invocation& i, const std::string& v) { return parse_seconds(v, i.timeout); }},
            {"timeout", 0, "SECONDS", bit(command::stop),
             "How long the guest has to power off after the ACPI power\n"
             "button before QMP quit ends QEMU. Default " +
                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                    vm_defaults.stop.powerdown_timeout)
                                    .count()) +
                 ".",
             [](invocation& i, const std::string& v) {
                 return parse_seconds(v, i.powerdown_timeout.emplace());
             }},
            {"timeline", 0, "FILE", bit(command::up),
             "Also write the boot timeline to FILE as JSON.",
             [](invocation& i, const std::string& v) {
                 i.timeline_file = v;
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
            {"stop", 0, "", bit(command::snapshot),
             "End the VM after the save (QMP quit). Default: it runs on.",
             [](invocation& i, const std::string&) {
                 i.stop_after_save = true;
                 return std::string();
             }},
            {"json", 0, "", bit(command::status) | bit(command::list) | bit(command::snapshot),
             "Print one JSON object (stable keys).",
             [](invocation& i, const std::string&) {
                 i.json = true;
                 return std::string();
             }},
            {"chown", 0, "USER:GROUP", copy_commands, "Owner of the copied files.",
             [](invocation& i, const std::string& v) {
                 if (v.find(':') == std::string::npos)
                     return "expected USER:GROUP, got " + in_quotes(v);
                 i.chown = v;
                 return std::string();
             }},
            {"from-guest", 0, "", bit(command::sync),
             "Copy the other way: FROM is a guest path, TO a host path.",
             [](invocation& i, const std::string&) {
                 i.from_guest = true;
                 return std::string();
             }},
            {"remove", 0, "", bit(command::forward),
             "Remove the forward from [ADDR:]HOST (its GUEST port must match).",
             [](invocation& i, const std::string&) {
                 i.remove_forward = true;
                 return std::string();
             }},
            {"exclude", 0, "PATTERN", copy_commands, "Skip files matching PATTERN (rsync).",
             [](invocation& i, const std::string& v) {
                 i.excludes.push_back(v);
                 return std::string();
             }},
            {"network-config", 0, "FILE", bit(command::cidata),
             "network-config, copied verbatim. Default: none.",
             [](invocation& i, const std::string& v) {
                 i.network_config = v;
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
            {"vendor-data", 0, "FILE", bit(command::cidata),
             "vendor-data, copied verbatim. Default: none.",
             [](invocation& i, const std::string& v) {
                 i.vendor_data = v;
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
            {"instance-id", 0, "ID", bit(command::cidata),
             "meta-data instance-id. Default iid-local01.",
             [](invocation& i, const std::string& v) {
                 i.instance_id = v;
                 return v.empty() ? std::string("expected an id") : std::string();
             }},
            {"hostname", 0, "NAME", bit(command::cidata),
             "meta-data local-hostname. Default: none.",
             [](invocation& i, const std::string& v) {
                 i.hostname = v;
                 return v.empty() ? std::string("expected a host name") : std::string();
             }},
            {"ssh-key", 0, "FILE", bit(command::cidata),
             "A public key file for meta-data public-keys. Repeatable.",
             [](invocation& i, const std::string& v) {
                 i.ssh_keys.emplace_back(v);
                 return v.empty() ? std::string("expected a file") : std::string();
             }},
        };
        return t;
    }();
    return table;
}

const option_spec* find_long(std::string_view name, command c) {
    for (const auto& o : options_table())
        if (o.name == name && (o.commands & bit(c)))
            return &o;
    return nullptr;
}

const option_spec* find_short(char name, command c) {
    for (const auto& o : options_table())
        if (o.short_name == name && (o.commands & bit(c)))
            return &o;
    return nullptr;
}

// The operands each subcommand takes, in order, and how many are required.
std::string take_operands(invocation& i, const std::vector<std::string>& ops) {
    auto expect = [&](std::size_t min, std::size_t max, std::string_view what) -> std::string {
        if (ops.size() < min)
            return "missing " + std::string(what);
        if (ops.size() > max)
            return "unexpected argument " + in_quotes(ops[max]);
        return {};
    };
    std::string err;
    switch (i.cmd) {
    case command::cidata:
        if (!(err = expect(1, 3, "OUTPUT")).empty())
            return err;
        i.output = ops[0];
        if (ops.size() > 1)
            i.user_data = ops[1];
        if (ops.size() > 2)
            i.meta_data = ops[2];
        if (!i.meta_data.empty() &&
            (!i.instance_id.empty() || !i.hostname.empty() || !i.ssh_keys.empty()))
            return "META_DATA is copied verbatim: --instance-id, --hostname and --ssh-key "
                   "cannot be used with it";
        return {};
    case command::image: {
        if (ops.empty())
            return "missing ACTION (pull, list or rm)";
        i.image_action = ops[0];
        if (i.image_action == "list") {
            if (!(err = expect(1, 1, "")).empty())
                return err;
            if (i.image_digest)
                return "list takes no --sha256/--sha512";
            return {};
        }
        if (i.image_action != "pull" && i.image_action != "rm")
            return "unknown action " + in_quotes(i.image_action) + " (expected pull, list or rm)";
        if (!(err = expect(2, 2, i.image_action == "rm" ? "URL or KEY" : "URL")).empty())
            return err;
        i.image = ops[1];
        if (i.image_action == "rm" && i.image_digest)
            return "rm takes no --sha256/--sha512";
        return {};
    }
    case command::network:
        if (ops.empty())
            return "missing ACTION (create, delete or list)";
        i.network_action = ops[0];
        if (i.network_action == "list")
            return expect(1, 1, "");
        if (i.network_action != "create" && i.network_action != "delete")
            return "unknown action " + in_quotes(i.network_action) +
                   " (expected create, delete or list)";
        if (!(err = expect(2, 2, "NAME")).empty())
            return err;
        i.network = ops[1];
        return qemu::check_network_name(i.network);
    case command::snapshot: {
        if (ops.empty())
            return "missing NAME SNAP (or list, or delete SNAP)";
        auto named = [](const std::string& snap) {
            auto why = qemu::check_name(snap);
            return why.empty() ? why : "snapshot name: " + why;
        };
        if (ops[0] == "list") {
            i.snapshot_action = "list";
            if (i.stop_after_save)
                return "list takes no --stop";
            return expect(1, 1, "");
        }
        if (i.json)
            return "--json is for 'snapshot list'";
        if (ops[0] == "delete") {
            i.snapshot_action = "delete";
            if (!(err = expect(2, 2, "SNAP")).empty())
                return err;
            if (i.stop_after_save)
                return "delete takes no --stop";
            i.snapshot = ops[1];
            return named(i.snapshot);
        }
        i.snapshot_action = "save";
        std::size_t at = ops[0] == "save" ? 1 : 0;
        if (ops.size() < at + 2)
            return ops.size() < at + 1 ? "missing NAME" : "missing SNAP";
        if (ops.size() > at + 2)
            return "unexpected argument " + in_quotes(ops[at + 2]);
        i.name = ops[at];
        i.snapshot = ops[at + 1];
        if (auto why = named(i.snapshot); !why.empty())
            return why;
        break;
    }
    case command::clone:
        if (!(err = expect(2, 2, ops.size() < 1 ? "SNAP" : "NEW")).empty())
            return err;
        i.snapshot = ops[0];
        i.name = ops[1];
        if (auto why = qemu::check_name(i.snapshot); !why.empty())
            return "snapshot name: " + why;
        break;
    case command::sync:
        if (!(err = expect(3, 3, ops.size() < 1 ? "NAME" : ops.size() < 2 ? "FROM" : "TO")).empty())
            return err;
        i.name = ops[0];
        i.from = ops[1];
        i.to = ops[2];
        if (i.from.empty() || i.to.empty())
            return "empty path";
        break;
    case command::copy: {
        if (!(err = expect(2, 2, ops.size() < 1 ? "SOURCE" : "DEST")).empty())
            return err;
        auto src = parse_copy_endpoint(ops[0]);
        auto dst = parse_copy_endpoint(ops[1]);
        if (!src.vm.empty() && !dst.vm.empty())
            return "both " + in_quotes(ops[0]) + " and " + in_quotes(ops[1]) +
                   " name a VM; one side must be a host path (copying between VMs is not "
                   "supported)";
        if (src.vm.empty() && dst.vm.empty())
            return "neither " + in_quotes(ops[0]) + " nor " + in_quotes(ops[1]) +
                   " names a VM; write one side as NAME:PATH";
        i.from_guest = !src.vm.empty();
        i.name = i.from_guest ? src.vm : dst.vm;
        i.from = src.path;
        i.to = dst.path;
        if (i.from.empty() || i.to.empty())
            return "empty path in " + in_quotes(i.from.empty() ? ops[0] : ops[1]);
        break;
    }
    case command::forward:
        if (!(err = expect(1, 2, "NAME")).empty())
            return err;
        i.name = ops[0];
        if (ops.size() == 2) {
            boost::system::error_code ec;
            i.forward_spec = qemu::parse_port_forward(ops[1], ec);
            if (!i.forward_spec)
                return "expected [ADDR:]HOST:GUEST (an IPv4 address, ports 0..65535 and "
                       "1..65535), got " +
                       in_quotes(ops[1]);
            if (i.remove_forward && i.forward_spec->host_port == 0)
                return "--remove needs the host port of the forward, not 0";
        } else if (i.remove_forward) {
            return "--remove needs the forward: [ADDR:]HOST:GUEST";
        }
        break;
    case command::list:
        return expect(0, 0, "");
    default:
        if (!(err = expect(1, 1, "NAME")).empty())
            return err;
        i.name = ops[0];
        break;
    }
    if (auto problem = qemu::check_name(i.name); !problem.empty())
        return problem;
    if (i.cmd == command::create && i.base.empty() && i.image.empty())
        return "missing --base IMAGE or --image URL";
    if (!i.base.empty() && !i.image.empty())
        return "--base and --image cannot be used together";
    if (i.image.empty() && (i.image_digest || !i.ca_file.empty() || !i.cache_dir.empty()))
        return "--sha256, --sha512, --cache-dir and --ca-file need --image";
    if (!i.initrd.empty() && i.kernel.empty())
        return "--initrd needs --kernel";
    if (!i.cmdline.empty() && i.kernel.empty())
        return "--cmdline needs --kernel";
    return {};
}

} // namespace

copy_endpoint parse_copy_endpoint(std::string_view text) {
    auto colon = text.find(':');
    if (colon != std::string_view::npos && qemu::check_name(text.substr(0, colon)).empty())
        return {std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
    return {{}, std::string(text)};
}

std::string_view command_word(command cmd) noexcept {
    if (auto* s = find_subcommand(cmd))
        return s->word;
    return cmd == command::version ? "version" : "";
}

std::string joined_command(const std::vector<std::string>& words) {
    std::string s;
    for (const auto& w : words)
        s += (s.empty() ? "" : " ") + w;
    return s;
}

std::variant<invocation, usage_error> parse(std::span<const std::string> args) {
    invocation inv;
    if (args.empty())
        return usage_error{"missing command", command::usage};
    const std::string& first = args[0];
    if (first == "--help" || first == "-h" || first == "help") {
        inv.help = true;
        if (first == "help" && args.size() > 1) {
            for (const auto& s : subcommands)
                if (s.word == args[1]) {
                    inv.cmd = s.cmd;
                    return inv;
                }
            return usage_error{"help: unknown command " + in_quotes(args[1]), command::usage};
        }
        return inv;
    }
    if (first == "--version") {
        inv.cmd = command::version;
        return inv;
    }
    const subcommand* sub = nullptr;
    for (const auto& s : subcommands)
        if (s.word == first)
            sub = &s;
    if (!sub)
        return usage_error{first.starts_with("-")
                               ? "unknown option " + in_quotes(first) + " before the command"
                               : "unknown command " + in_quotes(first),
                           command::usage};
    inv.cmd = sub->cmd;
    const std::string prefix = std::string(sub->word) + ": ";
    auto fail = [&](const std::string& m) -> std::variant<invocation, usage_error> {
        return usage_error{prefix + m, inv.cmd};
    };

    std::vector<std::string> operands;
    for (std::size_t k = 1; k < args.size(); ++k) {
        const std::string& a = args[k];
        if (a == "--") {
            if (inv.cmd != command::shell && inv.cmd != command::up)
                return fail("'--' is only for shell and up");
            inv.remote_command.assign(args.begin() + static_cast<std::ptrdiff_t>(k) + 1,
                                      args.end());
            if (inv.remote_command.empty())
                return fail("missing COMMAND after '--'");
            break;
        }
        const option_spec* spec = nullptr;
        std::optional<std::string> value;
        std::string shown = a;
        if (a.starts_with("--")) {
            auto eq = a.find('=');
            auto name = std::string_view(a).substr(2, eq == std::string::npos ? eq : eq - 2);
            shown = "--" + std::string(name);
            spec = find_long(name, inv.cmd);
            if (eq != std::string::npos)
                value = a.substr(eq + 1);
        } else if (a.size() == 2 && a[0] == '-' && a[1] != '-') {
            spec = find_short(a[1], inv.cmd);
        } else {
            operands.push_back(a);
            continue;
        }
        if (!spec)
            return fail("unknown option " + in_quotes(shown));
        if (spec->metavar.empty() && value)
            return fail(shown + " takes no value");
        if (!spec->metavar.empty() && !value) {
            if (k + 1 == args.size())
                return fail(shown + ": missing " + std::string(spec->metavar));
            value = args[++k];
        }
        if (auto err = spec->apply(inv, value.value_or("")); !err.empty())
            return fail(shown + ": " + err);
    }
    if (inv.help)
        return inv;
    if (auto err = take_operands(inv, operands); !err.empty())
        return fail(err);
    return inv;
}

std::string help_text(command cmd) {
    std::string out;
    if (cmd == command::usage || cmd == command::version) {
        out = "usage: localvm COMMAND [OPTIONS] [ARGS]\n\n"
              "Local QEMU virtual machines: create, boot, reach over SSH, stop.\n\n"
              "Commands:\n";
        for (const auto& s : subcommands) {
            std::string line = "  " + std::string(s.word);
            line.resize(12, ' ');
            auto summary = std::string(s.summary);
            out += line + summary.substr(0, summary.find('\n')) + "\n";
        }
        out += "\n'localvm COMMAND --help' describes a command and its options.\n"
               "Exit status: 0 success, 1 failure (one line on stderr says what failed),\n"
               "2 bad usage; shell and up with a COMMAND exit with the command's status.\n";
        return out;
    }
    const auto* sub = find_subcommand(cmd);
    out = "usage: localvm " + std::string(sub->word) +
          (sub->operands.empty() ? "" : " ") + std::string(sub->operands) +
          " [OPTIONS]\n\n" + std::string(sub->summary) + "\n\nOptions:\n";
    for (const auto& o : options_table()) {
        if (!(o.commands & bit(cmd)))
            continue;
        std::string head = "  ";
        head += o.short_name ? std::string("-") + o.short_name + ", " : std::string("    ");
        head += "--" + std::string(o.name);
        if (!o.metavar.empty())
            head += " " + std::string(o.metavar);
        std::string indent(28, ' ');
        if (head.size() < 27)
            head.resize(28, ' ');
        else
            head += "\n" + indent;
        std::string text;
        for (char c : o.help)
            text += c == '\n' ? "\n" + indent : std::string(1, c);
        out += head + text + "\n";
    }
    return out;
}

std::string connect_uri(const invocation& i, const char* env_connect) {
    if (!i.connect.empty())
        return i.connect;
    if (!env_connect || !*env_connect)
        return {};
    std::string problem;
    if (!libvirt::parse_uri(env_connect, problem))
        throw_error(errc::invalid_argument, "LOCALVM_CONNECT: expected a libvirt URI, got \"" +
                                                std::string(env_connect) + "\": " + problem);
    return env_connect;
}

} // namespace localvm::cli
