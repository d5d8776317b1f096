// An in-process ISO9660 image writer for small, flat sets of named files
// (the NoCloud seed), with Rock Ridge and Joliet names. Sans-io: the image
// goes to a byte sink; write_iso_file adds the atomic file write.
#pragma once

#include <localvm/atomic_file.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

namespace localvm::cloudinit {

/// One regular file in the image's root directory.
struct iso_file {
    /// The name readers show, exactly (Rock Ridge NM and Joliet): non-empty
    /// UTF-8, at most 64 UTF-16 units (the Joliet limit) and 128 bytes, not
    /// "." or "..", without control characters or any of `* / : ; ? \`.
    /// The primary ISO9660 tree holds a level-1 8.3 form (`user-data` ->
    /// `USER_DAT.;1`), made unique with digits when two names collide.
    std::string name;
    /// The bytes of the file, any size below 4 GiB, empty included.
    std::string contents;
    /// Permission bits recorded in Rock Ridge PX (the file type is added).
    /// Default 0444: the medium is read-only.
    std::filesystem::perms mode = std::filesystem::perms(0444);
};

/// How the image is labelled and stamped; the defaults suit a NoCloud seed.
struct iso_options {
    /// Volume identifier, in the primary and the Joliet descriptor (what
    /// `blkid` reports as LABEL). 1 to 16 printable ASCII characters, kept
    /// as given (lowercase allowed). Default "cidata", as NoCloud wants.
    std::string volume_id = "cidata";
    /// Every timestamp in the image (descriptors, directory records, Rock
    /// Ridge TF), in UTC, between 1900 and 2155. Default: the Unix epoch, so
    /// that equal inputs give identical bytes.
    std::chrono::sys_seconds timestamp{};
    /// Permission bits of the root directory (Rock Ridge PX). Default 0555.
    std::filesystem::perms directory_mode = std::filesystem::perms(0555);
};

/// The size in bytes of the image write_iso produces for these arguments
/// (a multiple of 2048). Throws as write_iso does for invalid input.
std::uint64_t iso_image_size(std::span<const iso_file> files, const iso_options& options = {});

/// Writes an ISO9660 image holding `files` in its root directory to `out`,
/// in order, in chunks (file contents are passed through without copying).
/// The image has a primary volume descriptor with Rock Ridge (RRIP 1.10:
/// SP, CE/ER, RR, PX, TF, NM), a Joliet supplementary descriptor (UCS-2
/// level 3), L and M path tables for both, and one root directory per tree.
/// Deterministic: equal arguments give identical bytes, whatever the order
/// of `files`. Throws `localvm::error` with `errc::invalid_argument` naming
/// the file or option (bad or duplicate name, file too large, bad volume id,
/// timestamp out of range) before anything is written; exceptions from
/// `out` propagate.
void write_iso(std::span<const iso_file> files, const byte_writer& out,
               const iso_options& options = {});

/// write_iso into a string: the whole image in memory (for tests, or to
/// hand to something other than a file).
std::string render_iso(std::span<const iso_file> files, const iso_options& options = {});

/// Writes the image to `path` atomically (write_file_atomic: a temporary
/// file in the same directory, renamed over an older image; not fsync'd:
/// seeds are rebuilt on every start), with
/// permissions `mode` (default 0600: seeds may hold secrets). A regular
/// file of this user's at `path` (not a symbolic link) that already holds
/// exactly these bytes with exactly `mode` is left as it is. Throws
/// `errc::invalid_argument` as write_iso does (leaving `path` untouched) and
/// `errc::io_error` when the file cannot be written.
void write_iso_file(const std::filesystem::path& path, std::span<const iso_file> files,
                    const iso_options& options = {},
                    std::filesystem::perms mode = std::filesystem::perms(0600));

} // namespace localvm::cloudinit
