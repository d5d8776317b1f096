#include "sink.hpp"

#include <localvm/error.hpp>

#include <cerrno>
#include <vector>

#include "sys/errno.hpp"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace localvm::image::detail {
namespace {

sys::unique_fd open_file(const std::filesystem::path& p, int flags) {
    sys::unique_fd fd(::open(p.c_str(), flags | O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd)
        sys::throw_errno(errc::io_error, "cannot open " + p.string(), errno);
    struct ::stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        throw_error(errc::unsupported, p.string() + " is not a regular file; refusing to use it");
    return fd;
}

// Write-back is started (not awaited) every this many bytes, so that the
// disk writes while more arrives and the final fsync has little left to
// wait for: 256 MiB took 0.2 s to flush at the end, all of it waiting.
constexpr std::uint64_t writeback_step = 8u << 20;

[[noreturn]] void io_failed(std::string_view what, const std::filesystem::path& p, int err) {
    sys::throw_errno(errc::io_error, "cannot " + std::string(what) + " " + p.string(), err);
}

} // namespace

download_sink::download_sink(const entry_paths& paths, compression c, digest_algorithm a)
    : paths_(paths)
    , hasher_(a)
    , decompressor_(c)
    , partial_fd_(open_file(paths_.partial, 0))
    , unpack_fd_(c != compression::none ? open_file(paths_.unpack, O_TRUNC) : sys::unique_fd()) {}

download_sink::~download_sink() {
    if (unpack_fd_)
        ::unlink(paths_.unpack.c_str()); // rebuilt from the partial file on resume
}

std::uint64_t download_sink::partial_size() const {
    struct ::stat st {};
    if (::fstat(partial_fd_.get(), &st) != 0)
        io_failed("stat", paths_.partial, errno);
    return static_cast<std::uint64_t>(st.st_size);
}

void download_sink::write_fd(const sys::unique_fd& fd, const std::filesystem::path& p,
                             std::string_view bytes) {
    if (sys::write_all(fd.get(), bytes.data(), bytes.size()) != bytes.size())
        io_failed("write", p, errno);
}

void download_sink::unpack(std::string_view bytes) {
    if (unpack_error_)
        return;
    try {
        decompressor_.feed(bytes, [this](std::string_view out) {
            write_fd(unpack_fd_, paths_.unpack, out);
            written(out.size());
        });
    } catch (const error& e) {
        if (e.code() != errc::protocol_error)
            throw;
        unpack_error_ = std::current_exception();
    }
}

void download_sink::start_at(std::uint64_t offset) {
    if (started_ && offset == position_)
        return;
    started_ = true;
    auto have = partial_size();
    if (offset > have)
        throw_error(errc::invalid_argument, "cannot resume " + paths_.partial.string() + " at " +
                                                std::to_string(offset) + ": it has " +
                                                std::to_string(have) + " bytes");
    hasher_.reset();
    decompressor_.reset();
    unpack_error_ = nullptr;
    if (unpack_fd_ &&
        (::ftruncate(unpack_fd_.get(), 0) != 0 || ::lseek(unpack_fd_.get(), 0, SEEK_SET) < 0))
        io_failed("truncate", paths_.unpack, errno);
    out_size_ = unpack_fd_ ? 0 : offset;
    out_flushing_ = out_size_;
    if (::lseek(partial_fd_.get(), 0, SEEK_SET) < 0)
        io_failed("seek", paths_.partial, errno);
    // Replay what an earlier attempt kept, then write on after it.
    std::vector<char> buf(1 << 20);
    std::uint64_t left = offset;
    while (left > 0) {
        auto n = ::read(partial_fd_.get(), buf.data(), std::min<std::uint64_t>(left, buf.size()));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            io_failed("read", paths_.partial, n < 0 ? errno : EIO);
        std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
        hasher_.update(chunk);
        if (unpack_fd_)
            unpack(chunk);
        left -= static_cast<std::uint64_t>(n);
    }
    if (::ftruncate(partial_fd_.get(), static_cast<off_t>(offset)) != 0)
        io_failed("truncate", paths_.partial, errno);
    if (::lseek(partial_fd_.get(), static_cast<off_t>(offset), SEEK_SET) < 0)
        io_failed("seek", paths_.partial, errno);
    position_ = offset;
}

void download_sink::written(std::uint64_t n) {
    out_size_ += n;
    if (out_size_ - out_flushing_ < writeback_step)
        return;
    // A hint: errors (none expected for a regular file) come from the fsync.
    const auto& fd = unpack_fd_ ? unpack_fd_ : partial_fd_;
    ::sync_file_range(fd.get(), static_cast<off_t>(out_flushing_),
                      static_cast<off_t>(out_size_ - out_flushing_), SYNC_FILE_RANGE_WRITE);
    out_flushing_ = out_size_;
}

void download_sink::write(std::string_view bytes) {
    write_fd(partial_fd_, paths_.partial, bytes);
    hasher_.update(bytes);
    if (unpack_fd_)
        unpack(bytes);
    else
        written(bytes.size());
    position_ += bytes.size();
}

digest download_sink::finish() {
    return hasher_.finish();
}

void download_sink::complete_unpack() {
    if (!unpack_fd_)
        return;
    if (unpack_error_)
        std::rethrow_exception(unpack_error_);
    decompressor_.finish([this](std::string_view out) {
        write_fd(unpack_fd_, paths_.unpack, out);
        written(out.size());
    });
}

std::filesystem::path download_sink::commit_source() {
    const auto& fd = unpack_fd_ ? unpack_fd_ : partial_fd_;
    const auto& p = unpack_fd_ ? paths_.unpack : paths_.partial;
    if (::fsync(fd.get()) != 0)
        io_failed("flush", p, errno);
    return p;
}

} // namespace localvm::image::detail
