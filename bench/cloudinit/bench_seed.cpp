// How long a typical NoCloud seed takes to build and write in-process,
// against genisoimage (what cloud-localds runs) for the same files, measured
// side by side. Prints `metric NAME VALUE UNIT` lines.
//
//   bench_seed [runs]     (default 50; the median of each is reported)
#include <localvm/cloudinit/nocloud.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../common/args.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace localvm::cloudinit;
using clock_type = std::chrono::steady_clock;

namespace {

seed typical_seed() {
    seed s;
    s.user_data = "#cloud-config\n"
                  "users:\n"
                  "  - name: dev\n"
                  "    sudo: ALL=(ALL) NOPASSWD:ALL\n"
                  "    shell: /bin/bash\n"
                  "    ssh_authorized_keys:\n"
                  "      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx dev@host\n"
                  "package_update: false\n"
                  "packages: [rsync, curl, jq]\n"
                  "write_files:\n";
    for (int i = 0; s.user_data.size() < 4000; ++i)
        s.user_data += "  - path: /etc/localvm/conf-" + std::to_string(i) +
                       ".ini\n    permissions: '0644'\n    content: |\n"
                       "      [section]\n      key = value number " +
                       std::to_string(i) + "\n";
    s.user_data += "runcmd:\n  - [systemctl, enable, --now, ssh]\n";
    s.meta = {"iid-bench-0001", "bench-vm", {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx dev@host"}};
    s.network_config = std::string(default_network_config());
    return s;
}

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const auto n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool on_path(const char* tool) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    for (std::size_t pos = 0; pos <= dirs.size();) {
        const auto end = std::min(dirs.find(':', pos), dirs.size());
        if (::access((fs::path(dirs.substr(pos, end - pos)) / tool).c_str(), X_OK) == 0)
            return true;
        pos = end + 1;
    }
    return false;
}

// Runs argv with stdout and stderr on /dev/null; returns the exit status.
int spawn_wait(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

} // namespace

int main(int argc, char* argv[]) {
    const int runs = argc > 1 ? bench_args::number(argv[0], argv[1], "RUNS", 1) : 50;
    std::string t = (fs::temp_directory_path() / "localvm-bench-seed-XXXXXX").string();
    if (!::mkdtemp(t.data())) {
        std::perror("mkdtemp");
        return 1;
    }
    const fs::path dir = t;
    const seed s = typical_seed();
    for (const auto& f : seed_files(s))
        std::ofstream(dir / f.name, std::ios::binary) << f.contents;
    const bool have_genisoimage = on_path("genisoimage");
    const std::vector<std::string> geniso = {"genisoimage",
                                             "-output",
                                             (dir / "geniso.iso").string(),
                                             "-volid",
                                             "cidata",
                                             "-joliet",
                                             "-rock",
                                             (dir / "user-data").string(),
                                             (dir / "meta-data").string(),
                                             (dir / "network-config").string()};

    std::vector<double> render_ms, plain_ms, atomic_ms, geniso_ms;
    for (int i = 0; i < runs; ++i) {
        auto t0 = clock_type::now();
        const std::string image = render_iso(seed_files(s)); // in memory
        render_ms.push_back(ms_since(t0));
        if (image.size() % 2048 != 0)
            return 1;

        // The same work genisoimage does: build, write, close (no fsync).
        // Both write a fresh file: truncating one just written makes ext4
        // flush it on close (auto_da_alloc), which would time the disk.
        fs::remove(dir / "plain.iso");
        fs::remove(dir / "geniso.iso");
        t0 = clock_type::now();
        {
            const int fd = ::open((dir / "plain.iso").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            write_seed(s, [&](std::string_view c) {
                while (!c.empty()) {
                    const auto n = ::write(fd, c.data(), c.size());
                    if (n <= 0)
                        throw std::runtime_error("write failed");
                    c.remove_prefix(static_cast<std::size_t>(n));
                }
            });
            ::close(fd);
        }
        plain_ms.push_back(ms_since(t0));

        t0 = clock_type::now();
        write_seed_file(dir / "seed.iso", s); // atomic: temp file, rename
        atomic_ms.push_back(ms_since(t0));

        if (have_genisoimage) {
            t0 = clock_type::now();
            if (spawn_wait(geniso) != 0) {
                std::fprintf(stderr, "genisoimage failed\n");
                return 1;
            }
            geniso_ms.push_back(ms_since(t0));
        }
    }
    const auto size = fs::file_size(dir / "seed.iso");
    fs::remove_all(dir);

    std::printf("metric cidata_seed_bytes %ju bytes\n", static_cast<std::uintmax_t>(size));
    std::printf("metric cidata_seed_render_ms %.4f ms\n", median(render_ms));
    std::printf("metric cidata_seed_write_ms %.4f ms\n", median(plain_ms));
    std::printf("metric cidata_seed_write_file_atomic_ms %.4f ms\n", median(atomic_ms));
    if (!have_genisoimage) {
        std::printf("# genisoimage is not installed: no comparison\n");
        return 0;
    }
    const double g = median(geniso_ms);
    std::printf("metric genisoimage_seed_ms %.4f ms\n", g);
    // Like for like: both build the image and write it to a file, unsynced.
    std::printf("metric cidata_speedup_vs_genisoimage %.1f ratio\n", g / median(plain_ms));
    // write_seed_file: what start does (temp file + rename over the old seed).
    std::printf("metric cidata_atomic_speedup_vs_genisoimage %.1f ratio\n", g / median(atomic_ms));
    return 0;
}
