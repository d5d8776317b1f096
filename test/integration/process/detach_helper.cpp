// Test helper: process_detach_helper STATUS_FILE STDOUT STDERR -- PROGRAM ARGS...
// ("-" for an empty path). Starts PROGRAM with spawn_detached, prints its pid
// and exits, so the test can check that the program outlives its starter.
#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>

#include "../../common/proc_util.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <iostream>

int main(int argc, char** argv) {
    if (argc < 6 || std::strcmp(argv[4], "--") != 0) {
        std::cerr << "usage: process_detach_helper STATUS STDOUT STDERR -- PROGRAM ARGS...\n";
        return 2;
    }
    auto path = [](const char* a) { return std::strcmp(a, "-") == 0 ? std::string() : std::string(a); };
    localvm::process::detached_options o;
    o.exit_status_file = path(argv[1]);
    o.stdout_file = path(argv[2]);
    o.stderr_file = path(argv[3]);
    o.argv.assign(argv + 5, argv + argc);
    try {
        auto d = localvm::process::spawn_detached(o);
        std::cout << d.pid() << std::endl;
        // DETACH_HELPER_DIE=1 dies before committing, as a starter killed
        // mid-start does; =after-commit right after committing. Either way
        // it prints the supervisor's pid (the program's parent) first.
        const char* die = std::getenv("DETACH_HELPER_DIE");
        const std::string when = die ? die : "";
        auto print_supervisor = [&] {
            auto st = proc_util::read_stat(d.pid());
            std::cout << (st ? st->ppid : 0) << std::endl;
        };
        if (!when.empty())
            print_supervisor();
        if (when == "1")
            ::raise(SIGKILL);
        d.commit();
        if (when == "after-commit")
            ::raise(SIGKILL);
    } catch (const localvm::error& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
    return 0;
}
