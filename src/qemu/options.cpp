#include <localvm/error.hpp>
#include <localvm/qemu/options.hpp>

#include "sys/secure_dir.hpp"

#include <cstdlib>

#include <sys/un.h>
#include <unistd.h>

namespace localvm::qemu {
namespace {

constexpr unsigned max_extra_qmp = 8;

std::filesystem::path env_path(const char* name) {
    const char* v = std::getenv(name);
    return v && *v ? std::filesystem::path(v) : std::filesystem::path();
}

std::filesystem::path default_data_dir() {
    if (auto x = env_path("XDG_DATA_HOME"); !x.empty())
        return x / "localvm";
    if (auto h = env_path("HOME"); !h.empty())
        return h / ".local" / "share" / "localvm";
    return std::filesystem::path("/tmp") / ("localvm-data-" + std::to_string(::getuid()));
}

std::filesystem::path default_runtime_dir() {
    if (auto x = env_path("XDG_RUNTIME_DIR"); !x.empty())
        return x / "localvm";
    return std::filesystem::path("/tmp") / ("localvm-" + std::to_string(::getuid()));
}

} // namespace

std::string check_name(std::string_view name, std::string_view what) {
    const std::string w(what);
    if (name.empty())
        return w + " is empty";
    if (name.size() > 64)
        return w + " is longer than 64 characters";
    if (name == "." || name == "..")
        return w + " \"" + std::string(name) + "\" is not allowed";
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return w + " \"" + std::string(name) +
                   "\" may only contain letters, digits, '.', '_' and '-'";
    }
    return {};
}

std::filesystem::path data_root(const std::filesystem::path& data_dir) {
    return std::filesystem::absolute(data_dir.empty() ? default_data_dir() : data_dir);
}

std::filesystem::path runtime_root(const std::filesystem::path& runtime_dir) {
    return std::filesystem::absolute(runtime_dir.empty() ? default_runtime_dir() : runtime_dir);
}

void make_directories(const layout& files) {
    sys::ensure_private_dir(files.runtime.parent_path(), files.runtime, "runtime directory");
    sys::ensure_private_dir(files.data.parent_path(), files.data, "data directory");
}

layout make_layout(const options& opts) {
    if (auto problem = check_name(opts.name); !problem.empty())
        throw_error(errc::invalid_argument, problem);
    layout l;
    l.data = data_root(opts.data_dir) / opts.name;
    l.runtime = runtime_root(opts.runtime_dir) / opts.name;
    l.disk = l.data / "disk.qcow2";
    l.seed = l.data / "seed.iso";
    l.efi_vars = l.data / "efi-vars.fd";
    l.host_key = l.data / "ssh_host_ed25519_key";
    l.qmp_socket = l.runtime / "qmp.sock";
    l.console_socket = l.runtime / "console.sock";
    l.agent_socket = l.runtime / "qga.sock";
    l.monitor_socket = l.runtime / "monitor.sock";
    l.console_log = l.runtime / "console.log";
    l.qemu_log = l.runtime / "qemu.log";
    l.pidfile = l.runtime / "qemu.pid";
    l.state = l.runtime / "state.json";
    l.lock = l.runtime / "lock";
    l.exit_status = l.runtime / "exit-status";
    l.known_hosts = l.runtime / "known_hosts";
    l.ssh_control = l.runtime / "ssh.sock";
    if (opts.extra_qmp > max_extra_qmp)
        throw_error(errc::invalid_argument, "extra_qmp: at most " + std::to_string(max_extra_qmp) +
                                                " QMP monitors, not " +
                                                std::to_string(opts.extra_qmp));
    for (unsigned i = 1; i <= opts.extra_qmp; ++i)
        l.extra_qmp_sockets.push_back(l.runtime / ("qmp-" + std::to_string(i) + ".sock"));
    // qmp-N.sock (N <= 8) is shorter than console.sock: these three decide.
    constexpr std::size_t max_socket_path = sizeof(sockaddr_un::sun_path) - 1;
    for (const auto* p : {&l.qmp_socket, &l.console_socket, &l.monitor_socket}) {
        if (p->string().size() > max_socket_path)
            throw_error(errc::invalid_argument,
                        "socket path " + p->string() + " is longer than " +
                            std::to_string(max_socket_path) +
                            " bytes; choose a shorter runtime directory");
    }
    return l;
}

} // namespace localvm::qemu
