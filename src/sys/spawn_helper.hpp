// Internal: starting one of localvm's helper programs (src/libexec) without
// forking this process. fork() copies the caller's page tables, which takes
// time in proportion to its memory (a quarter of a 500-VM start's CPU time
// went there, twice per VM); posix_spawn (a vfork-like clone in glibc)
// copies nothing and suspends only this thread, until the helper has
// exec'd. The helper then puts itself in the background (`leave_starter`),
// so it is never our zombie and outlives us, as the double fork used to.
#pragma once

#include <span>

#include <sys/types.h>
#include <unistd.h>

namespace localvm::sys {

/// Starts the program at `path` (absolute, no PATH search) with `argv` and
/// `envp` as our child, in our session (it leaves it itself, after its fork:
/// `leave_starter`), with default signal dispositions
/// and an empty signal mask, stdin, stdout and stderr on /dev/null, our
/// descriptor `fds[i]` on its descriptor 3 + i, and nothing else of ours
/// open. Returns 0 with `pid` set, or an errno value (nothing started):
/// the exec's own error (ENOENT, EACCES, ...) or one of setting it up.
/// Never throws but std::bad_alloc. Our descriptors are left as they are.
/// The child is ours to reap.
int spawn_helper(pid_t& pid, const char* path, char* const* argv, char* const* envp,
                 std::span<const int> fds);

/// In a helper program started by `spawn_helper`, first thing: forks, and
/// the parent exits 0 at once, so that the rest runs re-parented away from
/// the starter (which reaps only that short-lived parent), then makes the
/// child a new session's leader. Not the spawn: until its exec (which the
/// starter's thread waits for) the child stays in the starter's session,
/// so in its scheduling group where autogroups are on, instead of waiting
/// for the CPU as a new group while the VMs started before run; with 16
/// QEMUs started at once this halved the time until all were spawned
/// (bench_ready --start-many). Returns in the
/// child: true, or false (errno set, nothing forked) when fork failed.
/// Async-signal-safe. A fork of a small program: cheap.
inline bool leave_starter() noexcept {
    pid_t p = ::fork();
    if (p < 0)
        return false;
    if (p > 0)
        ::_exit(0);
    ::setsid(); // a fork is never a process group leader: this cannot fail
    return true;
}

} // namespace localvm::sys
