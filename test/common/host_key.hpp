// A throwaway guest SSH host key for tests that render or pin one
// (ssh-keygen -t ed25519 -C localvm-host-vm1).
#pragma once

#include <localvm/cloudinit/nocloud.hpp>

namespace localvm::test {

inline const cloudinit::ssh_host_key test_host_key = {
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACA2bAzwwCx3bxOVwblpM2IWX7DNtqgfvKSLByy1NUvH9wAAAJjSTZ+20k2f\n"
    "tgAAAAtzc2gtZWQyNTUxOQAAACA2bAzwwCx3bxOVwblpM2IWX7DNtqgfvKSLByy1NUvH9w\n"
    "AAAEDs8+f5GmCfdLndoq19jrXljbmLmPEtEa0wkFYDvtEjMTZsDPDALHdvE5XBuWkzYhZf\n"
    "sM22qB+8pIsHLLU1S8f3AAAAEGxvY2Fsdm0taG9zdC12bTEBAgMEBQ==\n"
    "-----END OPENSSH PRIVATE KEY-----\n",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDZsDPDALHdvE5XBuWkzYhZfsM22qB+8pIsHLLU1S8f3 "
    "localvm-host-vm1"};

} // namespace localvm::test
