#include "sys/spawn_helper.hpp"

#include "sys/fd.hpp"

#include <cerrno>
#include <csignal>
#include <vector>

#include <fcntl.h>
#include <spawn.h>

namespace localvm::sys {

namespace {

// The attributes and file actions, destroyed on every path.
struct spawn_setup {
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    bool have_attr = false, have_actions = false;
    spawn_setup() = default;
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
    ~spawn_setup() {
        if (have_actions)
            ::posix_spawn_file_actions_destroy(&actions);
        if (have_attr)
            ::posix_spawnattr_destroy(&attr);
    }
};

} // namespace

int spawn_helper(pid_t& pid, const char* path, char* const* argv, char* const* envp,
                 std::span<const int> fds) {
    const int first_free = 3 + static_cast<int>(fds.size());
    // Each source copied above every target first: a source sitting on a
    // target (our fd 4 to go on 3, our fd 3 to go on 4) would otherwise be
    // overwritten by an earlier dup2. Close-on-exec copies, closed here on
    // return (and in the child by closefrom).
    std::vector<unique_fd> high;
    high.reserve(fds.size());
    for (int fd : fds) {
        unique_fd h(::fcntl(fd, F_DUPFD_CLOEXEC, first_free));
        if (!h)
            return errno;
        high.push_back(std::move(h));
    }
    spawn_setup s;
    if (int rc = ::posix_spawnattr_init(&s.attr))
        return rc;
    s.have_attr = true;
    if (int rc = ::posix_spawn_file_actions_init(&s.actions))
        return rc;
    s.have_actions = true;
    sigset_t all, none;
    ::sigfillset(&all);
    ::sigemptyset(&none);
    int rc = ::posix_spawnattr_setflags(
        &s.attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (!rc)
        rc = ::posix_spawnattr_setsigdefault(&s.attr, &all);
    if (!rc)
        rc = ::posix_spawnattr_setsigmask(&s.attr, &none);
    if (!rc)
        rc = ::posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDWR, 0);
    for (int i = 1; i < 3 && !rc; ++i)
        rc = ::posix_spawn_file_actions_adddup2(&s.actions, 0, i);
    for (std::size_t i = 0; i < high.size() && !rc; ++i) // dup2 clears close-on-exec
        rc = ::posix_spawn_file_actions_adddup2(&s.actions, high[i].get(),
                                                3 + static_cast<int>(i));
    if (!rc)
        rc = ::posix_spawn_file_actions_addclosefrom_np(&s.actions, first_free);
    if (rc)
        return rc;
    return ::posix_spawn(&pid, path, &s.actions, &s.attr, argv, envp);
}

} // namespace localvm::sys
