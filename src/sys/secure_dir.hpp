// OS primitives for the directories and files localvm keeps its state in:
// directories that are provably the caller's own, files that are what they
// claim to be. Internal: the public entry point is qemu::make_directories.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <sys/stat.h>
#include <sys/types.h>

namespace localvm::sys {

/// Makes `dir` a private directory of the caller and returns once it is one.
/// `top` is the outermost directory localvm owns (`dir` itself or one of its
/// ancestors). Missing ancestors of `top` are created with mode 0700 and not
/// checked (they are the user's, e.g. `$HOME/.local/share`, or system ones
/// such as `/tmp`; symbolic links among them are followed). `top` and every
/// level below it down to `dir` are created with mode 0700 when missing and
/// then opened without following a symbolic link (`O_NOFOLLOW`, each level
/// relative to the one above, so nothing can be swapped in between) and
/// checked: a real directory, owned by the effective uid, not writable by
/// group or others (above `dir`, a sticky one such as a tmpfs mount's
/// root, mode 1777, passes: nobody else can remove or rename what is in
/// it, and the level below is checked in turn). `dir` itself ends with mode 0700: one of the
/// caller's own with only group/other read or search bits (made by an older version) is tightened.
/// Throws `errc::unsupported` naming the path, its owner and mode (or that it is a symbolic link or
/// not a directory) when a level fails the check, `errc::io_error` when a level cannot be created
/// or opened. `what` names the directory in messages, e.g. "runtime directory".
void ensure_private_dir(const std::filesystem::path& top, const std::filesystem::path& dir,
                        std::string_view what);

/// "uid 0 (root), mode 0700, a directory": how a file's lstat looks, for messages.
std::string describe(const struct ::stat& st);

/// The lstat of `path`, or nullopt when nothing is there (or it cannot be
/// looked at).
std::optional<struct ::stat> lstat_of(const std::filesystem::path& path);

/// fsyncs the directory `dir` so that a rename or unlink in it is durable.
/// Throws `errc::io_error`; file systems that cannot sync a directory
/// (EINVAL) are accepted as they are.
void sync_directory(const std::filesystem::path& dir);

} // namespace localvm::sys
