// A stand-in for qemu-system-x86_64, used through options::qemu_binary: to
// count (bench/scale: hundreds of VMs at almost no cost each) and to inject
// faults QEMU itself does not make on demand. FAKE_QEMU_MODE picks the
// behaviour:
//   run     (the default) behave like a paused QEMU whose guest never boots:
//           hold the -pidfile lock, listen on every QMP chardev and the
//           serial chardev (one client at a time each, as QEMU), open the
//           serial chardev's logfile= for writing, bind every hostfwd= TCP
//           forward (port 0: a free port) without accepting; speak QMP:
//           greeting, qmp_capabilities, query-status, cont, stop,
//           human-monitor-command "info usernet" (the bound forwards in
//           QEMU's table), system_powerdown (POWERDOWN and SHUTDOWN events,
//           then exit 0), quit (SHUTDOWN event, reply, exit 0); other
//           commands get CommandNotFound. SIGTERM/SIGINT/SIGHUP: SHUTDOWN
//           (host-signal) and exit 0. On exit the pid file and the sockets
//           are removed, as QEMU does. One thread, one poll loop, nothing
//           runs while no client talks.
//   stall   hold the -pidfile lock as QEMU does, open the serial
//           chardev's logfile= (as QEMU does at startup: the supervisor
//           drains that FIFO), listen on the QMP socket
//           (-chardev socket,id=qmp,path=...), greet, answer
//           qmp_capabilities, then never answer again
//   answer  as stall, but answer cont, query-status (running) and
//           human-monitor-command too: start works; system_powerdown and
//           quit get no answer (stop must get past them to signals)
//   late-off  as run, but the guest is slow to power off: the first
//           system_powerdown gets its reply and POWERDOWN only; at the
//           second the guest is off: SHUTDOWN, the monitor closed without
//           a reply, and QEMU's teardown takes 500 ms before it exits 0
//           (the second press meets QEMU on its way out)
//   fail    print FAKE_QEMU_STDERR to stderr and exit 1
//   kvm     under "-accel kvm" fail with QEMU's words for a missing KVM;
//           otherwise exec the real qemu-system-x86_64 with the same argv
#include <boost/json.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/signalfd.h>
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

// ---- run mode ---------------------------------------------------------

// "a=b,c=d,,e" -> {a: b, c: "d,e"}; a bare word is key "" (the backend).
std::map<std::string, std::string> split_options(const std::string& v) {
    std::map<std::string, std::string> out;
    std::vector<std::string> parts(1);
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == ',' && i + 1 < v.size() && v[i + 1] == ',') {
            parts.back() += ',';
            ++i;
        } else if (v[i] == ',') {
            parts.emplace_back();
        } else {
            parts.back() += v[i];
        }
    }
    for (auto& part : parts) {
        auto eq = part.find('=');
        if (eq == std::string::npos)
            out[out.count("") ? part : ""] = part;
        else if (out.count(part.substr(0, eq)) && part.starts_with("hostfwd="))
            out["hostfwd"] += "\n" + part.substr(eq + 1); // several forwards
        else
            out[part.substr(0, eq)] = part.substr(eq + 1);
    }
    return out;
}

int listen_unix(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return -1;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 8) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

struct chardev {
    std::string path;
    bool qmp = false;
    int listen_fd = -1;
    int client = -1;
    bool negotiated = false; // qmp_capabilities done: events go to it
    std::string in;
};

struct forward {
    std::string proto, address, guest;
    unsigned port = 0, guest_port = 0;
    int fd = -1;
};

struct fake_vm {
    std::vector<chardev> devs;
    std::vector<forward> fwds;
    std::string pidfile;
    int log_fd = -1;
    bool running = false;
    bool exiting = false;
    bool late_off = false; // FAKE_QEMU_MODE=late-off
    int presses = 0;
    bool linger = false; // exiting, slowly

    void cleanup() {
        for (auto& d : devs)
            ::unlink(d.path.c_str());
        ::unlink(pidfile.c_str());
    }

    void send(chardev& d, const json::value& v) {
        if (d.client >= 0)
            write_all(d.client, json::serialize(v) + "\r\n");
    }
    void event(const std::string& name, json::object data) {
        json::object e{{"event", name},
                       {"data", std::move(data)},
                       {"timestamp", json::object{{"seconds", 0}, {"microseconds", 0}}}};
        for (auto& d : devs)
            if (d.qmp && d.negotiated)
                send(d, e);
    }

    std::string usernet() const {
        std::string t = "VLAN -1 (net0):\r\n"
                        "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port "
                        "RecvQ SendQ\r\n";
        for (const auto& f : fwds) {
            char line[200];
            std::snprintf(line, sizeof line,
                          "  %s[HOST_FORWARD]  %d %15s %5u %15s %5u     0     0\r\n",
                          f.proto == "udp" ? "UDP" : "TCP", f.fd, f.address.c_str(), f.port,
                          "10.0.2.15", f.guest_port);
            t += line;
        }
        return t;
    }

    void command(chardev& d, const json::object& o) {
        auto* cmd = o.if_contains("execute");
        json::object reply;
        if (auto* id = o.if_contains("id"))
            reply["id"] = *id;
        if (!cmd || !cmd->is_string()) {
            reply["error"] = json::object{{"class", "GenericError"},
                                          {"desc", "QMP input member 'execute' is missing"}};
            send(d, reply);
            return;
        }
        std::string name(cmd->get_string());
        json::value result = json::object{};
        if (name == "qmp_capabilities") {
            d.negotiated = true;
        } else if (name == "query-status") {
            result = json::object{{"status", running ? "running" : "prelaunch"},
                                  {"running", running},
                                  {"singlestep", false}};
        } else if (name == "cont") {
            running = true;
            reply["return"] = json::object{};
            send(d, reply);
            event("RESUME", {});
            return;
        } else if (name == "stop") {
            running = false;
            event("STOP", {});
        } else if (name == "human-monitor-command") {
            auto* args = o.if_contains("arguments");
            const json::value* line =
                args && args->is_object() ? args->as_object().if_contains("command-line") : nullptr;
            result = line && line->is_string() && line->get_string() == "info usernet"
                         ? json::value(usernet())
                         : json::value("");
        } else if (name == "system_powerdown") {
            const bool off = !late_off || ++presses > 1;
            if (late_off && off) { // off as it is pressed again: no reply
                event("SHUTDOWN", {{"guest", true}, {"reason", "guest-shutdown"}});
                ::close(d.client);
                d.client = -1;
                exiting = linger = true;
                return;
            }
            reply["return"] = json::object{};
            send(d, reply);
            event("POWERDOWN", {});
            if (off) {
                event("SHUTDOWN", {{"guest", true}, {"reason", "guest-shutdown"}});
                exiting = true;
            }
            return;
        } else if (name == "quit") {
            event("SHUTDOWN", {{"guest", false}, {"reason", "host-qmp-quit"}});
            reply["return"] = json::object{};
            send(d, reply);
            exiting = true;
            return;
        } else {
            reply["error"] = json::object{{"class", "CommandNotFound"},
                                          {"desc", "The command " + name + " has not been found"}};
            send(d, reply);
            return;
        }
        reply["return"] = result;
        send(d, reply);
    }

    void on_input(chardev& d) {
        char chunk[4096];
        ssize_t n = ::read(d.client, chunk, sizeof chunk);
        if (n <= 0) {
            ::close(d.client);
            d.client = -1;
            d.negotiated = false;
            d.in.clear();
            return;
        }
        if (!d.qmp)
            return; // console input: the guest never reads it
        d.in.append(chunk, static_cast<std::size_t>(n));
        for (auto nl = d.in.find('\n'); nl != std::string::npos && !exiting; nl = d.in.find('\n')) {
            std::string line = d.in.substr(0, nl);
            d.in.erase(0, nl + 1);
            json::error_code ec;
            auto v = json::parse(line, ec);
            if (ec || !v.is_object()) {
                if (line.find_first_not_of(" \r\t") != std::string::npos)
                    send(d, json::object{{"error", json::object{{"class", "GenericError"},
                                                                {"desc", "JSON parse error"}}}});
                continue;
            }
            command(d, v.as_object());
        }
    }

    void on_accept(chardev& d) {
        d.client = ::accept4(d.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (d.client >= 0 && d.qmp)
            write_all(d.client,
                      R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, )"
                      R"("package": "fake"}, "capabilities": []}})"
                      "\r\n");
    }
};

// Sets up from the command line; false (after a message) when it cannot.
bool setup(int argc, char** argv, fake_vm& vm) {
    std::map<std::string, chardev> by_id;
    std::vector<std::string> qmp_ids;
    std::string serial_id, logfile;
    for (int i = 1; i + 1 < argc; ++i) {
        std::string opt = argv[i], v = argv[i + 1];
        if (opt == "-chardev") {
            auto o = split_options(v);
            if (o[""] != "socket" || o["path"].empty())
                continue;
            chardev d;
            d.path = o["path"];
            by_id[o["id"]] = d;
            if (o.count("logfile"))
                logfile = o["logfile"];
        } else if (opt == "-mon") {
            auto o = split_options(v);
            if (o["mode"] == "control")
                qmp_ids.push_back(o["chardev"]);
        } else if (opt == "-serial" && v.starts_with("chardev:")) {
            serial_id = v.substr(8);
        } else if (opt == "-nic" || opt == "-netdev") {
            auto o = split_options(v);
            std::string all = o["hostfwd"];
            std::size_t at = 0;
            while (!all.empty() && at <= all.size()) {
                auto end = all.find('\n', at);
                std::string f =
                    all.substr(at, end == std::string::npos ? std::string::npos : end - at);
                at = end == std::string::npos ? all.size() + 1 : end + 1;
                // tcp:127.0.0.1:0-:22
                forward fw;
                auto c1 = f.find(':'), dash = f.find('-');
                fw.proto = f.substr(0, c1);
                auto hostpart = f.substr(c1 + 1, dash - c1 - 1);
                auto c2 = hostpart.rfind(':');
                fw.address = hostpart.substr(0, c2);
                fw.port = static_cast<unsigned>(std::stoul(hostpart.substr(c2 + 1)));
                auto guestpart = f.substr(dash + 1);
                fw.guest_port =
                    static_cast<unsigned>(std::stoul(guestpart.substr(guestpart.rfind(':') + 1)));
                if (fw.address.empty())
                    fw.address = "0.0.0.0";
                vm.fwds.push_back(fw);
            }
        }
    }
    for (auto& id : qmp_ids) {
        auto it = by_id.find(id);
        if (it == by_id.end())
            continue;
        it->second.qmp = true;
        vm.devs.push_back(it->second);
    }
    if (auto it = by_id.find(serial_id); it != by_id.end())
        vm.devs.push_back(it->second);
    for (auto& d : vm.devs) {
        d.listen_fd = listen_unix(d.path);
        if (d.listen_fd < 0) {
            std::fprintf(stderr, "fake-qemu: cannot listen on %s: %s\n", d.path.c_str(),
                         std::strerror(errno));
            return false;
        }
    }
    for (auto& f : vm.fwds) {
        f.fd = ::socket(AF_INET, (f.proto == "udp" ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(f.port));
        int one = 1;
        ::setsockopt(f.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::inet_pton(AF_INET, f.address.c_str(), &a.sin_addr) != 1 ||
            ::bind(f.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            (f.proto != "udp" && ::listen(f.fd, 16) != 0)) {
            std::fprintf(
                stderr,
                "qemu-system-x86_64: Could not set up host forwarding rule '%s:%s:%u-:%u'\n",
                f.proto.c_str(), f.address.c_str(), f.port, f.guest_port);
            return false;
        }
        socklen_t len = sizeof a;
        ::getsockname(f.fd, reinterpret_cast<sockaddr*>(&a), &len);
        f.port = ntohs(a.sin_port);
    }
    // As QEMU: the logfile is opened for appending (a FIFO's open waits for
    // its reader, the supervisor draining it).
    if (!logfile.empty())
        vm.log_fd = ::open(logfile.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    return true;
}

int run_fake(int argc, char** argv, const std::string& pidfile, bool late_off) {
    sigset_t sigs;
    sigemptyset(&sigs);
    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        sigaddset(&sigs, sig);
    ::sigprocmask(SIG_BLOCK, &sigs, nullptr);
    int sfd = ::signalfd(-1, &sigs, SFD_CLOEXEC);
    fake_vm vm;
    vm.pidfile = pidfile;
    vm.late_off = late_off;
    if (!setup(argc, argv, vm)) {
        vm.cleanup();
        return 1;
    }
    std::vector<pollfd> fds;
    while (!vm.exiting) {
        fds.clear();
        fds.push_back({sfd, POLLIN, 0});
        for (auto& d : vm.devs) // one client at a time per chardev, as QEMU
            fds.push_back({d.client >= 0 ? d.client : d.listen_fd, POLLIN, 0});
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[0].revents) {
            signalfd_siginfo si;
            if (::read(sfd, &si, sizeof si) > 0)
                vm.event("SHUTDOWN", {{"guest", false}, {"reason", "host-signal"}});
            break;
        }
        for (std::size_t i = 0; i < vm.devs.size() && !vm.exiting; ++i) {
            if (!fds[i + 1].revents)
                continue;
            auto& d = vm.devs[i];
            if (d.client >= 0)
                vm.on_input(d);
            else
                vm.on_accept(d);
        }
    }
    if (vm.linger) {
        timespec teardown{0, 500 * 1000 * 1000}; // QEMU's own, simulated
        ::nanosleep(&teardown, nullptr);
    }
    vm.cleanup();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    // As QEMU: a client that closed its monitor connection is an error on
    // the next write, not SIGPIPE (localvm closes its monitor right after
    // `cont`'s reply, while the RESUME event is on its way).
    std::signal(SIGPIPE, SIG_IGN);
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
    if (mode.empty())
        mode = "run";
    if (mode != "stall" && mode != "answer" && mode != "run" && mode != "late-off") {
        std::fprintf(stderr, "fake-qemu: unknown FAKE_QEMU_MODE %s\n", mode.c_str());
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
    if (mode == "run" || mode == "late-off")
        return run_fake(argc, argv, pidfile, mode == "late-off");
    // As QEMU: every chardev's logfile= is open for writing from startup to
    // exit. Kept open.
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == "-chardev") {
            auto o = split_options(argv[i + 1]);
            if (o.count("logfile"))
                (void)::open(o["logfile"].c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        }

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
