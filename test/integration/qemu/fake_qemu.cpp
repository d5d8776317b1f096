// A stand-in for qemu-system-x86_64, used through options::qemu_binary to
// inject faults QEMU itself does not make on demand. FAKE_QEMU_MODE picks
// the behaviour:
//   stall   hold the -pidfile lock as QEMU does, listen on the QMP socket
//           (-chardev socket,id=qmp,path=...), greet, answer
//           qmp_capabilities, then never answer again
//   answer  as stall, but answer cont, query-status (running) and
//           human-monitor-command too: start works; system_powerdown and
//           quit get no answer (stop must get past them to signals)
//   fail    print FAKE_QEMU_STDERR to stderr and exit 1
//   kvm     under "-accel kvm" fail with QEMU's words for a missing KVM;
//           otherwise exec the real qemu-system-x86_64 with the same argv
#include <boost/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace json = boost::json;

namespace {

std::string option_after(int argc, char** argv, const std::string& name) {
    for (int i = 1; i + 1 < argc; ++i)
        if (name == argv[i])
            return argv[i + 1];
    return {};
}

std::string qmp_path(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; ++i) {
        std::string v = argv[i + 1];
        if (std::string(argv[i]) == "-chardev" && v.starts_with("socket,id=qmp,path=")) {
            v.erase(0, std::strlen("socket,id=qmp,path="));
            return v.substr(0, v.find(','));
        }
    }
    return {};
}

void write_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        ssize_t n = ::write(fd, s.data() + off, s.size() - off);
        if (n <= 0)
            return;
        off += static_cast<std::size_t>(n);
    }
}

// Serves one client until it hangs up.
void serve(int fd, bool answer_all) {
    write_all(fd, R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, )"
                  R"("package": "fake"}, "capabilities": []}})"
                  "\r\n");
    std::string buf;
    char chunk[4096];
    for (;;) {
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0)
            return;
        buf.append(chunk, static_cast<std::size_t>(n));
        for (auto nl = buf.find('\n'); nl != std::string::npos; nl = buf.find('\n')) {
            std::string line = buf.substr(0, nl);
            buf.erase(0, nl + 1);
            json::error_code ec;
            auto v = json::parse(line, ec);
            if (ec || !v.is_object())
                continue;
            auto& o = v.as_object();
            auto* cmd = o.if_contains("execute");
            if (!cmd || !cmd->is_string())
                continue;
            std::string name(cmd->get_string());
            json::value result = json::object{};
            if (name == "qmp_capabilities") {
            } else if (answer_all && name == "cont") {
            } else if (answer_all && name == "query-status") {
                result =
                    json::object{{"status", "running"}, {"running", true}, {"singlestep", false}};
            } else if (answer_all && name == "human-monitor-command") {
                result = "";
            } else {
                continue; // silence
            }
            json::object reply{{"return", result}};
            if (auto* id = o.if_contains("id"))
                reply["id"] = *id;
            write_all(fd, json::serialize(reply) + "\r\n");
        }
    }
}

} // namespace

int main(int argc, char** argv) {
    const char* m = std::getenv("FAKE_QEMU_MODE");
    std::string mode = m ? m : "";
    if (mode == "fail") {
        const char* text = std::getenv("FAKE_QEMU_STDERR");
        std::fprintf(stderr, "%s\n", text ? text : "fake-qemu: failing");
        return 1;
    }
    if (mode == "kvm") {
        if (option_after(argc, argv, "-accel") == "kvm") {
            std::fprintf(stderr, "Could not access KVM kernel module: No such file or directory\n"
                                 "qemu-system-x86_64: -accel kvm: failed to initialize kvm: No "
                                 "such file or directory\n");
            return 1;
        }
        std::vector<char*> args(argv, argv + argc);
        args[0] = const_cast<char*>("qemu-system-x86_64");
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        std::perror("fake-qemu: exec qemu-system-x86_64");
        return 127;
    }
    if (mode != "stall" && mode != "answer") {
        std::fprintf(stderr, "fake-qemu: set FAKE_QEMU_MODE\n");
        return 2;
    }
    // As QEMU: a write lock on the pid file for the whole life.
    auto pidfile = option_after(argc, argv, "-pidfile");
    int pfd = ::open(pidfile.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (pfd < 0 || ::fcntl(pfd, F_SETLK, &fl) != 0) {
        std::fprintf(stderr, "fake-qemu: cannot lock %s\n", pidfile.c_str());
        return 1;
    }
    if (::ftruncate(pfd, 0) != 0) {
    }
    write_all(pfd, std::to_string(::getpid()) + "\n");

    auto path = qmp_path(argc, argv);
    int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path.c_str());
    if (path.empty() || ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(lfd, 4) != 0) {
        std::fprintf(stderr, "fake-qemu: cannot listen on %s: %s\n", path.c_str(),
                     std::strerror(errno));
        return 1;
    }
    for (;;) {
        int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        serve(c, mode == "answer");
        ::close(c);
    }
}
