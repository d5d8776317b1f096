// Test helper: starts (or stops) a VM from a separate process, then exits.
// usage: starter start|stop DATA_DIR RUNTIME_DIR NAME
// exit: 0 done (prints the pid on start), 3 already_running, 4 not_running, 1 other error.
// LOCALVM_STARTER_DIE_AT=STAGE (a boot_stage word) makes the starter SIGKILL
// itself when start reports that stage; "STAGE+" does so at the next point
// where start waits (a QMP reply) instead, e.g. "qmp-ready+" dies waiting for
// `info usernet` (with LOCALVM_STARTER_PORTS=1) or for `cont`. With it set,
// it prints "spawned PID" when QEMU was spawned.
#include <localvm/error.hpp>
#include <localvm/qemu/manager.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <csignal>
#include <cstdlib>
#include <string>

#include <cstring>
#include <iostream>

int main(int argc, char** argv) {
    if (argc != 5)
        return 2;
    localvm::qemu::options o;
    o.data_dir = argv[2];
    o.runtime_dir = argv[3];
    o.name = argv[4];
    o.accel = localvm::qemu::accelerator::tcg;
    o.net = localvm::qemu::network::restricted;
    o.stop.powerdown_timeout = std::chrono::seconds(1);
    bool start = std::strcmp(argv[1], "start") == 0;
    int rc = 1;
    boost::asio::io_context ctx;
    localvm::qemu::manager m(ctx.get_executor(), o);
    const char* die = std::getenv("LOCALVM_STARTER_DIE_AT");
    std::string die_at = die ? die : "";
    m.set_stage_sink([&](localvm::qemu::boot_stage stage, std::string_view detail) {
        if (stage == localvm::qemu::boot_stage::qemu_spawned && !die_at.empty())
            std::cout << "spawned " << detail.substr(detail.find(' ') + 1) << std::endl;
        auto word = std::string(localvm::qemu::to_string(stage));
        if (die_at == word)
            ::raise(SIGKILL);
        if (die_at == word + "+")
            boost::asio::post(ctx, [] { ::raise(SIGKILL); });
    });
    boost::asio::co_spawn(
        ctx,
        [&]() -> boost::asio::awaitable<void> {
            if (start) {
                localvm::start_options s;
                s.memory = "128M";
                s.cpus = 1;
                if (const char* p = std::getenv("LOCALVM_STARTER_PORTS"); p && *p)
                    s.ports = {{"127.0.0.1", 0, 22}};
                co_await m.start(s);
                std::cout << *co_await m.pid() << std::endl;
            } else {
                co_await m.stop();
            }
        },
        [&](std::exception_ptr e) {
            rc = 0;
            if (!e)
                return;
            try {
                std::rethrow_exception(e);
            } catch (const localvm::error& err) {
                std::cerr << err.what() << "\n";
                rc = err.code() == localvm::errc::already_running ? 3
                     : err.code() == localvm::errc::not_running   ? 4
                                                                  : 1;
            } catch (const std::exception& err) {
                std::cerr << err.what() << "\n";
                rc = 1;
            }
        });
    ctx.run();
    return rc;
}
