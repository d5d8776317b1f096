// The localvm demo: boot a guest, wait until SSH works, run a command in it,
// stop it and delete it, all from one coroutine on one io_context.
//
// usage: boot_tiny [GUEST_DIR] [COMMAND]
//   GUEST_DIR  a folder with vmlinux, initrd.img and cmdline (default: the
//              tiny test guest, ~/.cache/localvm/guests/tiny)
//   COMMAND    what to run in the guest (default: uname -a)
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/qemu/manager.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <stdlib.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string read_line(const fs::path& p) {
    std::ifstream in(p);
    std::string line;
    std::getline(in, line);
    return line;
}

asio::awaitable<void> demo(fs::path guest, std::string command) {
    auto t0 = std::chrono::steady_clock::now();
    auto stamp = [&](const std::string& what) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
        std::printf("%7.2f s  %s\n", static_cast<double>(ms) / 1000.0, what.c_str());
    };

    // A scratch home for the VM and a fresh SSH key pair.
    char tmpl[] = "/tmp/localvm-demo-XXXXXX";
    fs::path home = ::mkdtemp(tmpl);
    localvm::process::options keygen;
    keygen.argv = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (home / "id").string()};
    co_await localvm::process::run_checked(keygen);
    localvm::process::options base;
    base.argv = {"qemu-img", "create", "-q", "-f", "qcow2", (home / "base.qcow2").string(), "64M"};
    co_await localvm::process::run_checked(base);

    localvm::qemu::options o;
    o.name = "demo";
    o.data_dir = home / "data";
    o.runtime_dir = home / "run";
    o.net = localvm::qemu::network::restricted; // the guest reaches nothing but its forwards
    o.ssh_identity_file = home / "id";
    // o.accel stays automatic: KVM where it really works, else TCG
    // (LOCALVM_ACCEL=tcg|kvm overrides).
    localvm::qemu::manager vm(co_await asio::this_coro::executor, o);
    vm.set_output([](std::string_view line) { std::cout << "          " << line << "\n"; });

    co_await vm.create(home / "base.qcow2");
    stamp("created the disk overlay");

    localvm::start_options s;
    s.cpus = 1;
    s.memory = "512M";
    s.ssh_authorized_key = read_line(home / "id.pub");
    s.user_data = "#!/bin/sh\necho 'hello from user-data' > /run/greeting\n";
    s.boot = localvm::direct_boot{guest / "vmlinux", guest / "initrd.img",
                                  read_line(guest / "cmdline")};
    s.ports = {{"127.0.0.1", 0, 22}}; // 0: QEMU picks a free port
    co_await vm.start(s);
    auto ports = co_await vm.ports();
    stamp("QEMU runs (pid " + std::to_string(*co_await vm.pid()) + "), ssh forwarded from 127.0.0.1:" +
          std::to_string(ports.at(0).host_port));

    co_await vm.wait_ready(180s);
    stamp("SSH is ready");

    auto r = co_await vm.shell(command + "; cat /run/greeting", {});
    stamp("ran `" + command + "` (exit status " + std::to_string(r.exit_status) + "):");
    std::cout << r.output;

    co_await vm.stop();
    stamp("stopped (ACPI power button)");
    co_await vm.remove();
    fs::remove_all(home);
    stamp("deleted");
}

} // namespace

int main(int argc, char** argv) {
    fs::path guest = argc > 1 ? fs::path(argv[1])
                              : fs::path(std::getenv("HOME") ? std::getenv("HOME") : "/root") /
                                    ".cache/localvm/guests/tiny";
    std::string command = argc > 2 ? argv[2] : "uname -a";
    int status = 0;
    asio::io_context ctx;
    asio::co_spawn(ctx, demo(guest, command), [&](std::exception_ptr e) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& err) {
            std::cerr << "boot_tiny: " << err.what() << "\n";
            status = 1;
        }
    });
    ctx.run();
    return status;
}
