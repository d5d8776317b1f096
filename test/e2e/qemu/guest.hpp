// The test guests built by test/guests/build, and VM options for them, on
// top of the public test kit (localvm/testing/vm.hpp).
#pragma once

#include <localvm/qemu/manager.hpp>
#include <localvm/testing/vm.hpp>

#include <filesystem>
#include <string>

namespace lve2e {

namespace fs = std::filesystem;

/// Loads a guest; throws naming the command that builds it when it is missing.
inline localvm::testing::guest_image load_guest(const std::string& name) {
    return localvm::testing::guest_image::load(name);
}

/// A temporary home for VMs, with an ed25519 key pair whose path has a
/// space. Any VM made under it is stopped and deleted with it, whatever the
/// test did (the kit's vm_set teardown).
struct home {
    localvm::testing::vm_set set;
    fs::path root = set.root();
    fs::path key = set.key();
    std::string public_key = set.public_key();

    localvm::qemu::options options(const std::string& name) const {
        auto o = localvm::testing::vm_spec::test_options();
        o.name = name;
        o.data_dir = root / "data";
        o.runtime_dir = root / "run";
        o.ssh_identity_file = key;
        o.ssh_user = "debian";
        return o;
    }
};

/// Start options for the tiny guest: direct boot, SSH forwarded to a free port.
inline localvm::start_options tiny_start(const localvm::testing::guest_image& g, const home& h,
                                         const std::string& extra_cmdline = {}) {
    localvm::start_options s;
    s.cpus = 1;
    s.memory = "512M";
    s.ssh_authorized_key = h.public_key;
    s.boot = g.boot(extra_cmdline);
    s.ports = {{"127.0.0.1", 0, 22}};
    return s;
}

} // namespace lve2e
