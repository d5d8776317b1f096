// The NoCloud instance-id of a VM, from a hash written down here rather than
// std::hash: cloud-init runs its first-boot modules again whenever the
// instance-id changes, so the id must not change with the standard library.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace localvm::qemu::detail {

/// MurmurHash64A (Austin Appleby) of `bytes`, 8-byte blocks read
/// little-endian. With seed 0xc70f6907 it is what libstdc++'s
/// std::hash<std::string> computes on 64-bit hosts (GCC 12), which earlier
/// instance-ids came from; pinned here so that they stay the same.
std::uint64_t murmur_hash_64a(std::string_view bytes, std::uint64_t seed) noexcept;

/// "iid-NAME-HEX": HEX is murmur_hash_64a(user_data + "\n" + ssh_key,
/// 0xc70f6907) in lower-case hex without leading zeros. A new user-data or
/// key makes a new instance (cloud-init applies them); the same ones give
/// the same id on every start, so cloud-init does not run again.
std::string instance_id(std::string_view name, std::string_view user_data,
                        std::string_view ssh_key);

} // namespace localvm::qemu::detail
