// What a VM's supervisor costs in memory when the starter holds a large
// heap: its RSS, proportional (PSS) and private memory from
// /proc/<pid>/smaps_rollup, while the starter still holds the heap and
// after the starter freed it. Side by side:
//   supervisor_*        the supervisor as it is: localvm's helper program
//                       localvm-supervise, exec'd (process/detached.hpp);
//   fork_without_exec_* what it was before (issue #20): a fork of the
//                       starter that goes on running, which keeps a
//                       copy-on-write image of the starter's memory (its
//                       own once the starter frees the heap);
//   program_execd_*     the baseline: the program itself (`sleep`), exec'd.
// Run through `meson test --benchmark` or `meson devenv`, so that the
// library finds its helper in the build tree (LOCALVM_LIBEXECDIR).
// usage: bench_supervisor_memory [HEAP_MIB]   (default 512)
#include <localvm/process/detached.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <csignal>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../common/args.hpp"

namespace {

// kB figures of smaps_rollup: Rss, Pss, Private_Clean, Private_Dirty, ...
std::map<std::string, long> rollup(pid_t pid) {
    std::map<std::string, long> out;
    std::ifstream f("/proc/" + std::to_string(pid) + "/smaps_rollup");
    std::string line;
    while (std::getline(f, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos || line.find(" kB") == std::string::npos)
            continue;
        out[line.substr(0, colon)] = std::atol(line.c_str() + colon + 1);
    }
    return out;
}

pid_t parent_of(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    char state;
    int ppid = 0;
    std::sscanf(stat.c_str() + close + 2, "%c %d", &state, &ppid);
    return ppid;
}

void report(const char* when, const char* who, pid_t pid) {
    auto r = rollup(pid);
    const long priv = r["Private_Clean"] + r["Private_Dirty"];
    std::printf("metric %s_%s_rss_kib %ld KiB\n", who, when, r["Rss"]);
    std::printf("metric %s_%s_pss_kib %ld KiB\n", who, when, r["Pss"]);
    std::printf("metric %s_%s_private_kib %ld KiB\n", who, when, priv);
}

} // namespace

int main(int argc, char** argv) {
    const std::size_t mib =
        argc > 1 ? static_cast<std::size_t>(bench_args::number(argv[0], argv[1], "HEAP_MIB", 1))
                 : 512;
    const std::size_t bytes = mib << 20;
    // A heap the starter really holds (touched), as a test harness would.
    void* heap = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (heap == MAP_FAILED)
        return 1;
    std::memset(heap, 0x5a, bytes);

    char tmpl[] = "/tmp/lvsupmem-XXXXXX";
    if (!::mkdtemp(tmpl))
        return 1;
    localvm::process::detached_options o;
    o.argv = {"sleep", "600"};
    o.exit_status_file = std::filesystem::path(tmpl) / "status";
    auto proc = localvm::process::spawn_detached(o);
    proc.commit();
    const pid_t program = proc.pid();
    const pid_t supervisor = parent_of(program);
    // The former supervisor's way: a fork that does not exec and waits.
    const pid_t forked = ::fork();
    if (forked == 0) {
        ::pause();
        ::_exit(0);
    }
    std::printf("metric starter_heap_mib %zu MiB\n", mib);
    report("heap_held", "supervisor", supervisor);
    report("heap_held", "fork_without_exec", forked);
    report("heap_held", "program_execd", program);
    ::munmap(heap, bytes); // the starter lets go of its heap
    report("heap_freed", "supervisor", supervisor);
    report("heap_freed", "fork_without_exec", forked);
    ::kill(forked, SIGKILL);
    ::waitpid(forked, nullptr, 0);
    // End it; the supervisor records the end, then exits: wait for that.
    int sfd = static_cast<int>(::syscall(SYS_pidfd_open, supervisor, 0));
    ::kill(program, SIGTERM);
    if (sfd >= 0) {
        pollfd p{sfd, POLLIN, 0};
        ::poll(&p, 1, 5000);
        ::close(sfd);
    }
    std::filesystem::remove_all(tmpl);
    return 0;
}
