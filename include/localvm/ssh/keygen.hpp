// An SSH key pair for logging in to guests, made on first use.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <string>

namespace localvm::ssh {

/// Makes sure an SSH key pair exists at `identity` (private key, no
/// passphrase) and `identity.pub`, and returns the public key line
/// ("ssh-ed25519 AAAA... comment"). A missing private key is created with
/// `ssh-keygen -q -t ed25519 -N "" -C <comment>` (its directory is created
/// with mode 0700 when missing); an existing one is kept, and a missing
/// `.pub` is derived from it (`ssh-keygen -y`). Throws `localvm::error`:
/// `errc::not_found` when ssh-keygen is not installed, `errc::process_failed`
/// when it fails (its stderr in the diagnostic), `errc::io_error` naming a
/// file or directory that cannot be read or created. Cancellation ends
/// ssh-keygen and completes with `operation_aborted`.
boost::asio::awaitable<std::string> ensure_key_pair(std::filesystem::path identity,
                                                    std::string comment = "localvm");

} // namespace localvm::ssh
