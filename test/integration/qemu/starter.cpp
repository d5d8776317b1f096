// Test helper: starts (or stops) a VM from a separate process, then exits.
// usage: starter start|stop DATA_DIR RUNTIME_DIR NAME
// exit: 0 done (prints the pid on start), 3 already_running, 4 not_running, 1 other error.
#include <localvm/error.hpp>
#include <localvm/qemu/manager.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

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
    boost::asio::co_spawn(
        ctx,
        [&]() -> boost::asio::awaitable<void> {
            if (start) {
                localvm::start_options s;
                s.memory = "128M";
                s.cpus = 1;
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
