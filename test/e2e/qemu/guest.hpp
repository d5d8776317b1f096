// The test guests built by test/guests/build, and VM options for them.
#pragma once

#include <localvm/error.hpp>
#include <localvm/qemu/manager.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <stdlib.h>
#include <unistd.h>

namespace lve2e {

namespace fs = std::filesystem;

/// Paths of one built guest (its `env` file: KERNEL, INITRD, CMDLINE, DISK).
struct guest {
    std::map<std::string, std::string> env;
    std::string operator[](const std::string& k) const {
        auto it = env.find(k);
        return it == env.end() ? std::string() : it->second;
    }
};

inline fs::path guest_cache() {
    if (const char* c = std::getenv("LOCALVM_GUEST_CACHE"); c && *c)
        return c;
    return fs::path(std::getenv("HOME") ? std::getenv("HOME") : "/root") / ".cache" / "localvm" /
           "guests";
}

/// Loads a guest; throws naming the command that builds it when it is missing.
inline guest load_guest(const std::string& name) {
    auto file = guest_cache() / name / "env";
    std::ifstream in(file);
    if (!in)
        localvm::throw_error(localvm::errc::not_found,
                             "test guest " + file.string() +
                                 " is missing: run test/guests/build " + name);
    guest g;
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find('=');
        if (eq == std::string::npos)
            continue;
        auto v = line.substr(eq + 1);
        if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
            v = v.substr(1, v.size() - 2);
        auto key = line.substr(0, eq);
        // Paths are files of the guest's folder, wherever it was built.
        if (key == "KERNEL" || key == "INITRD" || key == "DISK")
            v = (file.parent_path() / fs::path(v).filename()).string();
        g.env[key] = v;
    }
    return g;
}

/// A temporary home for VMs, with an ed25519 key pair.
struct home {
    fs::path root;
    fs::path key;
    std::string public_key;

    home() {
        char tmpl[] = "/tmp/lve-XXXXXX";
        root = ::mkdtemp(tmpl);
        key = root / "id ed25519"; // a space in the identity path on purpose
        std::string cmd = "ssh-keygen -q -t ed25519 -N '' -C localvm-e2e -f '" + key.string() + "'";
        if (std::system(cmd.c_str()) != 0)
            localvm::throw_error(localvm::errc::process_failed, "ssh-keygen failed");
        std::ifstream in(key.string() + ".pub");
        std::getline(in, public_key);
    }
    ~home() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }

    localvm::qemu::options options(const std::string& name) const {
        localvm::qemu::options o;
        o.name = name;
        o.data_dir = root / "data";
        o.runtime_dir = root / "run";
        o.accel = localvm::qemu::accelerator::tcg;
        o.net = localvm::qemu::network::restricted;
        o.ssh_identity_file = key;
        o.ssh_user = "debian";
        return o;
    }
};

/// Start options for the tiny guest: direct boot, SSH forwarded to a free port.
inline localvm::start_options tiny_start(const guest& g, const home& h,
                                         const std::string& extra_cmdline = {}) {
    localvm::start_options s;
    s.cpus = 1;
    s.memory = "512M";
    s.ssh_authorized_key = h.public_key;
    s.boot = localvm::direct_boot{g["KERNEL"], g["INITRD"], g["CMDLINE"] + " " + extra_cmdline};
    s.ports = {{"127.0.0.1", 0, 22}};
    return s;
}

} // namespace lve2e
