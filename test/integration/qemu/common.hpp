// Shared setup of the QEMU backend's integration tests: a temporary VM home,
// a blank base image, and options that run QEMU with TCG and no guest OS
// (UEFI firmware with nothing to boot: it runs, and ignores ACPI).
#pragma once

#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>

#include <filesystem>
#include <string>

#include <stdlib.h>

namespace lvtest {

struct vm_home {
    std::filesystem::path root;
    std::filesystem::path base;

    vm_home() {
        char tmpl[] = "/tmp/lvq-XXXXXX";
        root = ::mkdtemp(tmpl);
        base = root / "base.qcow2";
    }
    ~vm_home() {
        std::error_code ec;
        std::filesystem::remove_all(root, ec);
    }

    localvm::qemu::options options(const std::string& name = "vm") const {
        localvm::qemu::options o;
        o.name = name;
        o.data_dir = root / "data";
        o.runtime_dir = root / "run";
        o.accel = localvm::qemu::accelerator::tcg;
        o.net = localvm::qemu::network::restricted;
        o.stop.powerdown_timeout = std::chrono::seconds(1);
        return o;
    }
};

inline localvm::start_options small_vm() {
    localvm::start_options s;
    s.memory = "128M";
    s.cpus = 1;
    s.ports = {{"127.0.0.1", 0, 22}};
    s.user_data = "#!/bin/sh\necho hello\n";
    return s;
}

} // namespace lvtest
