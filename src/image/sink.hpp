// Where downloaded bytes go: appended to the partial file (resumable, the
// bytes as published), hashed, and, for a compressed image, decompressed
// into the unpack file, all in one pass. Internal to the image layer.
#pragma once

#include <localvm/image/cache.hpp>
#include <localvm/image/digest.hpp>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <string_view>

#include "decompress.hpp"
#include "sys/fd.hpp"

namespace localvm::image::detail {

class download_sink {
public:
    /// Opens (creating, mode 0600, never through a symbolic link) the
    /// entry's partial file and, for a compressed image, its unpack file.
    /// Throws `errc::io_error`.
    download_sink(const entry_paths& paths, compression c, digest_algorithm a);
    download_sink(const download_sink&) = delete;
    ~download_sink();

    /// Bytes of the partial file already there (what a Range may resume from).
    std::uint64_t partial_size() const;
    /// Positions at `offset` before a body's bytes: 0 drops everything;
    /// the current position (after the first call) keeps the state; any other offset (at most
    /// partial_size(), a resume by a new process) rebuilds hash and
    /// decompressor state by replaying the partial file's first `offset`
    /// bytes, and truncates after them.
    void start_at(std::uint64_t offset);
    /// Appends `bytes`: written, hashed, decompressed. Throws `errc::io_error`
    /// (disk full...).
    void write(std::string_view bytes);
    /// Bytes taken so far (the position).
    std::uint64_t position() const noexcept { return position_; }
    /// Ends the input: the digest of everything written.
    digest finish();
    /// After `finish`, for a compressed image: ends the decompression.
    /// Throws `errc::protocol_error` when the compressed data was corrupt
    /// (found while writing: kept until now so that a digest mismatch is
    /// reported first) or is truncated.
    void complete_unpack();
    /// The finished file to rename into place (the unpack file when
    /// decompressing, else the partial file), flushed to disk.
    std::filesystem::path commit_source();

private:
    static void write_fd(const sys::unique_fd& fd, const std::filesystem::path& p,
                         std::string_view bytes);
    void unpack(std::string_view bytes);
    /// Counts `n` bytes appended to the file `commit_source` will flush, and
    /// starts their write-back to disk every few MiB.
    void written(std::uint64_t n);

    entry_paths paths_;
    hasher hasher_;
    decompressor decompressor_;
    sys::unique_fd partial_fd_;
    sys::unique_fd unpack_fd_; // none when not decompressing
    std::exception_ptr unpack_error_;
    std::uint64_t position_ = 0;
    std::uint64_t out_size_ = 0;     // bytes in the file to commit
    std::uint64_t out_flushing_ = 0; // its write-back started up to here
    bool started_ = false;
};

} // namespace localvm::image::detail
