// The cloud-config the cloud guest's tests give both backends.
#pragma once

#include <string>

namespace lvcloud {

/// /etc/hosts managed (sudo resolves the hostname), the image's default
/// user and a user `tester` (passwordless sudo, bash, `public_key`), and a
/// runcmd that writes `marker` to /run/marker.
inline std::string user_data(const std::string& public_key, const std::string& marker) {
    return "#cloud-config\n"
           "manage_etc_hosts: true\n"
           "users:\n"
           "  - default\n"
           "  - name: tester\n"
           "    sudo: ALL=(ALL) NOPASSWD:ALL\n"
           "    shell: /bin/bash\n"
           "    ssh_authorized_keys:\n"
           "      - " +
           public_key +
           "\n"
           "runcmd:\n"
           "  - [sh, -c, 'echo " +
           marker + " > /run/marker']\n";
}

} // namespace lvcloud
