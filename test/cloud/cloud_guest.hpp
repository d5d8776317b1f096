// What the cloud guest's tests give and check the same on both backends.
#pragma once

#include <localvm/manager.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
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

/// The host key ssh pinned (`host_key_pub`, the VM's `.pub` file) is the one
/// cloud-init installed from the seed, and the guest's only one.
inline boost::asio::awaitable<void> expect_only_the_pinned_host_key(
    localvm::manager& m, std::filesystem::path host_key_pub) {
    std::ifstream pub_in(host_key_pub);
    std::string type, blob;
    pub_in >> type >> blob;
    auto r = co_await m.shell("sudo -n sh -c 'cat /etc/ssh/ssh_host_ed25519_key.pub; echo; ls "
                              "/etc/ssh | grep -c \"^ssh_host_.*_key$\"'",
                              {});
    BOOST_TEST(!blob.empty());
    BOOST_TEST(r.output.find(blob) != std::string::npos, r.output);
    BOOST_TEST(r.output.ends_with("\n1\n"), r.output);
}

/// `sync` of a folder under `root` (a space in a name) to /srv/payload,
/// owned by `tester` there.
inline boost::asio::awaitable<void> expect_sync_with_chown(localvm::manager& m,
                                                           std::filesystem::path root) {
    auto src = root / "payload";
    std::filesystem::create_directories(src / "sub dir");
    std::ofstream(src / "sub dir" / "file one") << "payload\n";
    localvm::sync_options sy;
    sy.chown = "tester:tester";
    co_await m.sync(src.string() + "/", "/srv/payload", sy);
    auto r = co_await m.shell(
        "stat -c %U '/srv/payload/sub dir/file one' && cat '/srv/payload/sub dir/file one'", {});
    BOOST_TEST(r.output == "tester\npayload\n", r.output);
}

} // namespace lvcloud
