// A local file's copy in a libvirt storage pool, uploaded once and reused by
// digest: how the libvirt backend gives a remote daemon the base image and
// the boot files that exist on this host only.
#pragma once

#include <localvm/libvirt/client.hpp>
#include <localvm/output.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace localvm::libvirt::detail {

/// The volume `name` in `pool`, or nullopt when the daemon has none by that
/// name (VIR_ERR_NO_STORAGE_VOL). Throws `call_error` for any other refusal.
boost::asio::awaitable<std::optional<vol_ref>> find_volume(client& c, const pool_ref& pool,
                                                           std::string name);

/// Deletes `vol` once the daemon lets go of it. An upload that was just cut
/// short may still hold the volume: the daemon ends an aborted upload
/// stream on its own time and refuses the delete until then ("still in
/// use", VIR_ERR_OPERATION_INVALID). Such refusals are retried for up to
/// `limit`; after that, or on any other refusal, throws `call_error`.
/// Cancellation: throws `operation_aborted` while it waits between tries.
boost::asio::awaitable<void> delete_released_volume(client& c, const vol_ref& vol,
                                                    std::chrono::milliseconds limit);

/// The volume holding the file whose sha256 is `sha256_hex`:
/// "localvm-sha256-HEX". Pure.
std::string pool_copy_name(std::string_view sha256_hex);

/// The empty volume that says `volume` is complete: VOLUME + ".complete".
/// It is created after the upload's last byte was confirmed, so a volume
/// without it is an upload that was interrupted. Pure.
std::string pool_copy_marker(std::string_view volume);

/// `file`'s sha256 in lower-case hex, read in 1 MiB pieces that yield to
/// the io_context between them (a large image does not stall other work).
/// Throws `errc::not_found` when it does not exist, `errc::io_error` when
/// it cannot be read. Cancellation: throws `operation_aborted` between
/// pieces.
boost::asio::awaitable<std::string> file_sha256(std::filesystem::path file);

/// Where and how `ensure_pool_copy` works.
struct pool_copy_options {
    pool_copy_options() = default;
    /// The directory of this host's upload locks (one file per digest, made
    /// private when missing).
    std::filesystem::path lock_dir;
    std::chrono::milliseconds lock_timeout{60000}; ///< Waiting for another uploader.
    line_sink say;                                 ///< Progress lines; may be empty.
};

/// The volume in `pool` holding `file`'s bytes (a raw volume named by its
/// digest, `pool_copy_name`): reused when it exists with its marker, else
/// uploaded through the daemon (`open_upload`, 1 MiB writes). Uploads of
/// one digest are serialised between the processes of this host by a lock
/// file in `opts.lock_dir`; under it, a volume without its marker (an
/// interrupted upload) is deleted and uploaded again. A failed or
/// cancelled upload deletes its volume: no partial volume is left to be
/// reused. (Processes on different hosts uploading the same new file to
/// one pool at the same moment are not serialised.) Returns the volume and
/// its path on the daemon's host. Throws as `file_sha256`, `call_error`
/// for the daemon's errors, `errc::timeout` when the lock is not had in
/// `opts.lock_timeout`. Cancellation: throws `operation_aborted` after
/// deleting what it uploaded (a volume create that the daemon finishes
/// after that clean-up leaves an empty volume without marker, which is
/// never reused: the next upload replaces it). Copies are shared by every
/// VM and never deleted by the backend.
boost::asio::awaitable<std::pair<vol_ref, std::string>>
ensure_pool_copy(client& c, pool_ref pool, std::filesystem::path file, pool_copy_options opts);

} // namespace localvm::libvirt::detail
