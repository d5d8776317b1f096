// A localvm user, written against the installed headers only. Needs no VM
// and no QEMU: prints a QEMU command line and NoCloud meta-data, gets an
// error from the library's category, and asks the QEMU backend, on the
// caller's io_context, about a VM that was never created, and starts a
// detached, supervised `sleep` (the way QEMU runs): the library must find its
// helper program, localvm-supervise, installed with it (or, before install,
// through LOCALVM_LIBEXECDIR). Exit status 0 when every answer is the
// expected one.
#include <localvm/cloudinit/nocloud.hpp>
#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qemu/arguments.hpp>
#include <localvm/qemu/manager.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <chrono>
#include <csignal>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <unistd.h>

namespace asio = boost::asio;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
    std::cout << (ok ? "ok    " : "FAIL  ") << what << '\n';
    failures += ok ? 0 : 1;
}

asio::awaitable<void> ask_backend(std::filesystem::path home) {
    localvm::qemu::options o;
    o.name = "consumer";
    o.data_dir = home / "data";
    o.runtime_dir = home / "run";
    localvm::qemu::manager vm(co_await asio::this_coro::executor, o);
    expect(!co_await vm.exists(), "a VM that was never created does not exist");
    expect(!co_await vm.running(), "and is not running");
}

// Starts `sleep` detached under its supervisor, ends it, and reads how the
// supervisor recorded the end.
asio::awaitable<void> supervised(std::filesystem::path dir) {
    localvm::process::detached_options d;
    d.argv = {"sleep", "60"};
    d.exit_status_file = dir / "status";
    auto proc = co_await localvm::process::launch_detached(d);
    expect(co_await proc.hand_over(), "a supervised program is handed over");
    // The supervisor is the program's parent (field 4 of /proc/PID/stat).
    std::ifstream stat("/proc/" + std::to_string(proc.pid()) + "/stat");
    std::string line;
    std::getline(stat, line);
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    char state = 0;
    pid_t supervisor = 0;
    rest >> state >> supervisor;
    ::kill(proc.pid(), SIGTERM);
    expect(co_await localvm::process::wait_exit(supervisor, std::chrono::seconds(10)),
           "its supervisor ends after it");
    auto status = localvm::process::read_exit_status(d.exit_status_file);
    expect(status && status->how == "signaled" && status->number == SIGTERM,
           "the supervisor recorded the program's end");
}

} // namespace

int main() {
    localvm::qemu::launch_plan plan;
    plan.name = "consumer";
    plan.qemu_binary = "qemu-system-x86_64";
    plan.disk = "/var/lib/vms/a,b.qcow2";
    plan.qmp_socket = "/run/vm/qmp.sock";
    plan.console_socket = "/run/vm/console.sock";
    plan.console_log = "/run/vm/console.log";
    plan.pidfile = "/run/vm/qemu.pid";
    plan.ports = {{"127.0.0.1", 2222, 22}};
    std::string line;
    for (const auto& arg : localvm::qemu::command_line(plan))
        line += (line.empty() ? "" : " ") + arg;
    std::cout << line << '\n';
    expect(line.find("a,,b.qcow2") != std::string::npos, "commas in the disk path are doubled");

    localvm::cloudinit::meta_data md;
    md.instance_id = "iid-consumer";
    md.local_hostname = "consumer";
    auto rendered = localvm::cloudinit::render_meta_data(md);
    std::cout << rendered;
    expect(rendered == "instance-id: \"iid-consumer\"\nlocal-hostname: \"consumer\"\n",
           "meta-data renders as documented");

    try {
        md.local_hostname = "two\nlines";
        localvm::cloudinit::render_meta_data(md);
        expect(false, "a control character in meta-data is rejected");
    } catch (const localvm::error& e) {
        std::cout << e.what() << '\n';
        expect(e.code() == localvm::errc::invalid_argument,
               "a control character in meta-data is errc::invalid_argument");
    }

    // Never created: the manager only reads paths under it.
    auto home =
        std::filesystem::temp_directory_path() / ("localvm-consumer-" + std::to_string(::getpid()));
    asio::io_context io;
    asio::co_spawn(io, ask_backend(home), [](std::exception_ptr e) {
        if (e)
            std::rethrow_exception(e);
    });
    io.run();
    expect(!std::filesystem::exists(home), "asking made no files");

    std::filesystem::create_directories(home);
    try {
        asio::co_spawn(io, supervised(home), [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
        io.restart();
        io.run();
    } catch (const localvm::error& e) {
        std::cout << e.what() << '\n';
        expect(false, "a supervised program starts");
    }
    std::filesystem::remove_all(home);

    std::cout << (failures == 0 ? "consumer: all good\n" : "consumer: FAILED\n");
    return failures == 0 ? 0 : 1;
}
