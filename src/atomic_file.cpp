#include <localvm/atomic_file.hpp>
#include <localvm/error.hpp>

#include <cerrno>
#include <cstring>
#include <string>

#include "sys/errno.hpp"
#include "sys/fd.hpp"
#include "sys/secure_dir.hpp"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm {
namespace {

[[noreturn]] void fail(const char* what, const std::filesystem::path& path, int err) {
    sys::throw_errno(errc::io_error, std::string(what) + " " + path.string(), err);
}

} // namespace

atomic_file::atomic_file(const std::filesystem::path& target)
    : target_(target) {
    // O_CREAT|O_EXCL (mkostemp's own): never a file or link already there.
    std::string pattern = target.string() + ".tmp-XXXXXX";
    fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (fd_ < 0)
        fail("cannot create a temporary file for", target, errno);
    name_ = pattern;
}

atomic_file::~atomic_file() {
    if (fd_ >= 0)
        ::close(fd_);
    if (!name_.empty())
        ::unlink(name_.c_str());
}

void atomic_file::write(std::string_view bytes) {
    if (name_.empty())
        throw_error(errc::invalid_argument, "write to " + target_.string() + " after commit");
    if (sys::write_all(fd_, bytes.data(), bytes.size()) != bytes.size())
        fail("cannot write", target_, errno);
}

void atomic_file::commit(std::filesystem::perms mode, bool sync) {
    if (name_.empty())
        throw_error(errc::invalid_argument, "commit of " + target_.string() + " twice");
    if (::fchmod(fd_, static_cast<mode_t>(mode)) != 0)
        fail("cannot set the mode of", target_, errno);
    if (sync && ::fsync(fd_) != 0)
        fail("cannot flush", target_, errno);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0)
        fail("cannot close", target_, errno);
    // rename replaces a symbolic link at the target; it never follows it.
    if (::rename(name_.c_str(), target_.c_str()) != 0)
        fail("cannot rename a temporary file onto", target_, errno);
    name_.clear();
    if (sync) // the rename itself survives a crash only once its directory is flushed
        sys::sync_directory(target_.has_parent_path() ? target_.parent_path() : ".");
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents,
                       std::filesystem::perms mode, bool sync) {
    atomic_file file(path);
    file.write(contents);
    file.commit(mode, sync);
}

void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(const byte_writer&)>& producer,
                       std::filesystem::perms mode, bool sync) {
    atomic_file file(path);
    producer([&](std::string_view chunk) { file.write(chunk); });
    file.commit(mode, sync);
}

} // namespace localvm
