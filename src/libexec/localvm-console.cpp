// localvm-console: the drainer of a VM's console log (see
// include/localvm/console/drain.hpp), a program of its own so that it holds
// none of its starter's memory. localvm's log_drainer::start runs it; it is
// not meant to be run by hand.
//
//   localvm-console --log FILE --rotated FILE --fifo FIFO --limit BYTES
//       --connect-timeout-ms MS
//
// Descriptors on entry: 3 the FIFO's read end (non-blocking), 4 the log
// (open for writing), 5 the report pipe (it writes its pid there), 6 the
// control socket (see src/console/drain_child.hpp); 0..2 are /dev/null. It
// is started as its starter's child (posix_spawn) and first forks itself
// into the background: the process the starter reaps exits 0 at once.
// Exit status 2 for a bad command line.
#include "drain_child.hpp"
#include "sys/spawn_helper.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace {

int usage(const char* why) {
    std::fprintf(stderr,
                 "localvm-console: %s\n"
                 "usage: localvm-console --log FILE --rotated FILE --fifo FIFO --limit BYTES "
                 "--connect-timeout-ms MS\n"
                 "(run by liblocalvm, with the FIFO, log, report pipe and control socket on "
                 "fds 3 to 6)\n",
                 why);
    return 2;
}

// A decimal in [min, max], or false.
bool number(const char* text, unsigned long long max, unsigned long long& out) {
    if (!*text || *text == '-')
        return false;
    char* end = nullptr;
    errno = 0;
    out = std::strtoull(text, &end, 10);
    return errno == 0 && *end == '\0' && out <= max;
}

} // namespace

int main(int argc, char** argv) {
    localvm::console::detail::drain_plan p;
    bool have_limit = false, have_timeout = false;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return usage("an option without its value");
        const char* a = argv[i];
        const char* v = argv[i + 1];
        unsigned long long n = 0;
        if (std::strcmp(a, "--log") == 0) {
            p.log = v;
        } else if (std::strcmp(a, "--rotated") == 0) {
            p.rotated = v;
        } else if (std::strcmp(a, "--fifo") == 0) {
            p.fifo = v;
        } else if (std::strcmp(a, "--limit") == 0) {
            if (!number(v, ~0ULL, n) || n == 0)
                return usage("--limit: a number of bytes, at least 1");
            p.limit = n;
            have_limit = true;
        } else if (std::strcmp(a, "--connect-timeout-ms") == 0) {
            if (!number(v, 0x7fffffff, n))
                return usage("--connect-timeout-ms: a number of milliseconds");
            p.connect_timeout_ms = static_cast<int>(n);
            have_timeout = true;
        } else {
            return usage("unknown option");
        }
    }
    if (!p.log || !p.rotated || !p.fifo || !have_limit || !have_timeout)
        return usage("every option is needed");
    for (int fd = 3; fd <= 6; ++fd)
        if (::fcntl(fd, F_GETFD) < 0)
            return usage("fds 3 to 6 are not open");
    if (!localvm::sys::leave_starter()) {
        const pid_t code = -errno; // read where the drainer's pid would come
        if (::write(5, &code, sizeof code) < 0) {
        }
        return 1;
    }
    localvm::console::detail::drain(p, 3, 4, 5, 6);
}
