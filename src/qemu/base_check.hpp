// Internal: the checks a VM's base image and disk size pass before an
// overlay is built on the base, shared by the QEMU and libvirt backends.
#pragma once

#include <localvm/qemu/options.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace localvm::qemu::detail {

/// `o.disk_size` as a byte count (what qemu-img gets, never the caller's
/// text); nullopt when it is empty. Throws `errc::invalid_argument` naming
/// a text that is no size.
std::optional<std::uint64_t> requested_disk_bytes(const options& o);

/// Runs `qemu-img info` on `base` under resource limits (the base may be
/// hostile) and returns its format. Throws `errc::process_failed` when
/// qemu-img fails or names no format, `errc::unsupported` when the base
/// makes QEMU open other host files (backing chain, data file, extents)
/// and `o.allow_base_backing_chain` is false. Cancellation: qemu-img is
/// killed, `operation_aborted`.
boost::asio::awaitable<std::string> check_base(const options& o, const std::filesystem::path& base);

} // namespace localvm::qemu::detail
