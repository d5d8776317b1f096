// Whole-file writes that never leave a half-written file behind.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace localvm {

/// Receives successive chunks of a file's contents.
using byte_writer = std::function<void(std::string_view)>;

/// A file written piece by piece (e.g. between awaits) that appears at its
/// path whole or not at all: the bytes go to a new temporary file beside
/// the target (`<path>.tmp-XXXXXX`, created exclusively, close-on-exec,
/// mode 0600 until committed); `commit` renames it into place. Destroyed
/// without `commit` (an exception, a cancelled copy), it removes the
/// temporary file and leaves `path` untouched. Move-less, not thread-safe.
class atomic_file {
public:
    /// Creates the temporary file. Throws `errc::io_error` naming `path`
    /// and errno's text (e.g. its directory does not exist).
    explicit atomic_file(const std::filesystem::path& path);
    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;
    ~atomic_file();

    /// Appends `bytes`. Throws `errc::io_error` (a full disk, ...), or
    /// `errc::invalid_argument` after `commit`.
    void write(std::string_view bytes);

    /// Sets `mode`, flushes (unless `sync` is false), closes and renames
    /// onto the path (replacing an older file, or a symbolic link there
    /// without following it), then flushes the directory (with `sync`).
    /// Throws `errc::io_error`; the temporary file is then removed (by the
    /// destructor) and the path untouched.
    void commit(std::filesystem::perms mode, bool sync = true);

private:
    std::filesystem::path target_;
    std::string name_; // the temporary file; empty once committed
    int fd_ = -1;
};

/// Writes `contents` to `path` atomically: into a new temporary file in the
/// same directory (created exclusively, close-on-exec, mode 0600 until
/// done), flushed to disk (unless `sync` is false: for files rebuilt on
/// every use, where only atomicity matters), then renamed over `path`
/// (replacing an older file, or a symbolic link there without following
/// it), and with `sync` the directory is flushed too so that the rename
/// survives a crash. Readers see the old file or the new one, never a mix. Throws
/// `localvm::error` with `errc::io_error` naming the path and errno's text;
/// on failure the temporary file is removed and `path` is untouched.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents,
                       std::filesystem::perms mode = std::filesystem::perms(0644),
                       bool sync = true);

/// As above, but the contents come from `producer`, which is handed a writer
/// to call once per chunk (for large outputs such as ISO images). An
/// exception from `producer` propagates after the temporary file is removed.
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(const byte_writer&)>& producer,
                       std::filesystem::perms mode = std::filesystem::perms(0644),
                       bool sync = true);

} // namespace localvm
