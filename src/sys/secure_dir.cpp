#include "secure_dir.hpp"

#include "sys/errno.hpp"

#include <localvm/error.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

namespace localvm::sys {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void io_fail(const std::string& what, const fs::path& p, int err) {
    throw_errno(errc::io_error, "cannot " + what + " " + p.string(), err);
}

std::string type_name(mode_t m) {
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISREG(m))
        return "a regular file";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    return "of an unknown type";
}

std::string user_name(uid_t uid) {
    std::string s = "uid " + std::to_string(uid);
    if (const passwd* pw = ::getpwuid(uid))
        s += std::string(" (") + pw->pw_name + ")";
    return s;
}

// Closes an fd on every way out.
struct fd_guard {
    int fd = -1;
    ~fd_guard() {
        if (fd >= 0)
            ::close(fd);
    }
};

// Opens `name` (relative to `at`, or absolute with AT_FDCWD) as a directory
// without following a symbolic link, or refuses what is there instead.
int open_dir(int at, const fs::path& name, const fs::path& full, std::string_view what) {
    int fd =
        ::openat(at, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    int err = errno;
    if (err == ELOOP || err == ENOTDIR) {
        struct ::stat st {};
        if (::fstatat(at, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            std::string detail = describe(st);
            if (S_ISLNK(st.st_mode)) {
                std::error_code ec;
                auto target = fs::read_symlink(full, ec);
                if (!ec)
                    detail += " to " + target.string();
            }
            throw_error(errc::unsupported, std::string(what) + " " + full.string() + " is " +
                                               detail +
                                               ", not a directory of the caller's own; "
                                               "refusing to use it");
        }
    }
    io_fail("open " + std::string(what), full, err);
}

void check_dir(int fd, const fs::path& full, std::string_view what, bool innermost) {
    struct ::stat st {};
    if (::fstat(fd, &st) != 0)
        io_fail("look at " + std::string(what), full, errno);
    const uid_t me = ::geteuid();
    // Others who may write in a level could have planted what is below it,
    // unless the sticky bit keeps them from removing or renaming our entries
    // (as in /tmp): that is enough above the VM's own directory, which is
    // checked in turn.
    bool shared =
        (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (innermost || (st.st_mode & S_ISVTX) == 0);
    if (!S_ISDIR(st.st_mode) || st.st_uid != me || shared)
        throw_error(errc::unsupported,
                    std::string(what) + " " + full.string() +
                        " is not the caller's own: " + describe(st) + "; expected a directory of " +
                        user_name(me) + " with mode 0700 (remove it, or choose another directory)");
    if (innermost && (st.st_mode & 077) != 0 && ::fchmod(fd, 0700) != 0)
        io_fail("make private (mode 0700)", full, errno);
}

} // namespace

std::string describe(const struct ::stat& st) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return type_name(st.st_mode) + " of " + user_name(st.st_uid) + ", mode " + mode;
}

std::optional<struct ::stat> lstat_of(const fs::path& path) {
    struct ::stat st {};
    if (::lstat(path.c_str(), &st) != 0)
        return std::nullopt;
    return st;
}

void ensure_private_dir(const fs::path& top, const fs::path& dir, std::string_view what) {
    auto rel = dir.lexically_relative(top);
    if (!top.is_absolute() || rel.empty() || *rel.begin() == "..")
        throw_error(errc::invalid_argument,
                    std::string(what) + " " + dir.string() + " is not below " + top.string());
    // The user's levels above `top`: made when missing, not judged.
    fs::path p;
    for (const auto& part : top.parent_path()) {
        p /= part;
        if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST)
            io_fail("create", p, errno);
    }
    // `top` and below: made 0700, opened level by level without following links.
    std::vector<fs::path> levels{top.filename()};
    for (const auto& part : rel)
        if (part != ".")
            levels.push_back(part);
    fd_guard at{AT_FDCWD};
    fs::path full = top.parent_path();
    for (std::size_t i = 0; i < levels.size(); ++i) {
        const auto& name = i == 0 ? top : levels[i];
        full /= levels[i];
        if (::mkdirat(at.fd, name.c_str(), 0700) != 0 && errno != EEXIST)
            io_fail("create " + std::string(what), full, errno);
        fd_guard next{open_dir(at.fd, name, full, what)};
        check_dir(next.fd, full, what, i + 1 == levels.size());
        std::swap(at.fd, next.fd); // the level above closes with `next`
    }
}

void sync_directory(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        io_fail("open directory", dir, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0 && err != EINVAL)
        io_fail("flush directory", dir, err);
}

} // namespace localvm::sys
