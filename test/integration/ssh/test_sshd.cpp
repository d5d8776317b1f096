// The ssh layer against a real OpenSSH sshd that each test case starts on
// 127.0.0.1 (unprivileged port, generated host key, a generated client key
// in a directory whose name has a space and a quote; known_hosts files in a
// directory whose name has a space and a percent sign).
//
// The whole program runs in a private mount namespace where the user's
// ~/.ssh/config (the passwd home, which ssh reads whatever $HOME says) and
// /etc/ssh/ssh_config are hostile: a `Host *` block with a ProxyCommand,
// LocalCommand and RemoteCommand that write marker files, agent forwarding
// and a control master. localvm's ssh and rsync must not read them.
#define BOOST_TEST_MODULE ssh_sshd
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/ssh/command.hpp>
#include <localvm/ssh/master.hpp>
#include <localvm/ssh/probe.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include <pwd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using localvm::errc;
namespace ssh = localvm::ssh;
namespace process = localvm::process;

namespace {

struct environment {
    fs::path dir;         // everything lives here; removed at the end
    fs::path key;         // authorized client key (path with space and quote)
    fs::path stranger;    // a key that is not authorized
    fs::path host_key;    // sshd's host key
    std::string host_pub; // its public half ("ssh-ed25519 AAAA...")
    fs::path config;
    fs::path markers;    // where the hostile ssh configuration leaves its traces
    std::string hostile; // why the hostile configuration is not in place ("" when it is)
};

environment* env = nullptr;

std::string read_all(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

void keygen(const fs::path& path) {
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        process::options o;
        o.argv = {"ssh-keygen", "-q", "-t",           "ed25519", "-N",
                  "",           "-C", "localvm-test", "-f",      path.string()};
        co_await process::run_checked(std::move(o));
    });
}

// A `Host *` block that would hijack any ssh that reads it.
std::string hostile_config(const fs::path& markers, const std::string& who) {
    const std::string m = (markers / who).string();
    return "Host *\n"
           "  ProxyCommand /bin/sh -c 'echo proxy >> " +
           m +
           "; exit 1'\n"
           "  PermitLocalCommand yes\n"
           "  LocalCommand /bin/sh -c 'echo local >> " +
           m +
           "'\n"
           "  RemoteCommand echo hijacked-by-" +
           who +
           "\n"
           "  ForwardAgent yes\n"
           "  ForwardX11 yes\n"
           "  ControlMaster auto\n"
           "  ControlPath " +
           (markers / (who + "-control-%C")).string() +
           "\n"
           "  ControlPersist yes\n"
           "  GlobalKnownHostsFile " +
           (markers / (who + "-known-hosts")).string() + "\n";
}

// Bind-mounts hostile files over the passwd home and /etc/ssh/ssh_config in
// a private mount namespace of this process (and of the ssh it starts).
// Returns why it could not, or "".
std::string install_hostile_ssh_config(const environment& e) {
    const passwd* pw = ::getpwuid(::getuid());
    if (!pw || !pw->pw_dir || !*pw->pw_dir)
        return "no passwd home directory";
    if (::unshare(CLONE_NEWNS) != 0)
        return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return std::string("mount --make-rprivate /: ") + std::strerror(errno);
    const fs::path home = e.dir / "hostile home";
    fs::create_directories(home / ".ssh");
    std::ofstream(home / ".ssh" / "config") << hostile_config(e.markers, "user-config");
    const fs::path system = e.dir / "hostile ssh_config";
    std::ofstream(system) << hostile_config(e.markers, "system-config");
    if (::mount(home.c_str(), pw->pw_dir, nullptr, MS_BIND, nullptr) != 0)
        return std::string("bind mount over ") + pw->pw_dir + ": " + std::strerror(errno);
    if (fs::exists("/etc/ssh/ssh_config") &&
        ::mount(system.c_str(), "/etc/ssh/ssh_config", nullptr, MS_BIND, nullptr) != 0)
        return std::string("bind mount over /etc/ssh/ssh_config: ") + std::strerror(errno);
    return {};
}

std::vector<std::string> markers_left() {
    std::vector<std::string> out;
    for (const auto& d : fs::directory_iterator(env->markers))
        out.push_back(d.path().filename().string());
    return out;
}

struct global_setup {
    global_setup() {
        for (const char* tool :
             {"/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/bin/rsync"})
            if (!fs::exists(tool)) {
                std::cerr << "skipping: " << tool << " is not installed\n";
                std::_Exit(77);
            }
        static environment e;
        char tmpl[] = "/tmp/localvm-ssh-test.XXXXXX";
        BOOST_TEST_REQUIRE(mkdtemp(tmpl) != nullptr);
        e.dir = tmpl;
        fs::create_directories(e.dir / "key dir 'q'");
        e.key = e.dir / "key dir 'q'" / "id_ed25519";
        e.stranger = e.dir / "stranger";
        e.host_key = e.dir / "ssh_host_ed25519_key";
        keygen(e.key);
        keygen(e.stranger);
        keygen(e.host_key);
        e.host_pub = read_all(e.host_key.string() + ".pub");
        while (!e.host_pub.empty() && e.host_pub.back() == '\n')
            e.host_pub.pop_back();
        fs::copy_file(e.key.string() + ".pub", e.dir / "authorized_keys");
        e.config = e.dir / "sshd_config";
        std::ofstream(e.config) << "HostKey " << e.host_key.string() << "\n"
                                << "AuthorizedKeysFile " << (e.dir / "authorized_keys").string()
                                << "\n"
                                << "PidFile none\n"
                                << "StrictModes no\n"
                                << "UsePAM no\n"
                                << "PermitRootLogin yes\n"
                                << "PasswordAuthentication no\n"
                                << "KbdInteractiveAuthentication no\n"
                                << "LogLevel ERROR\n";
        e.markers = e.dir / "markers";
        fs::create_directories(e.markers);
        e.hostile = install_hostile_ssh_config(e);
        if (!e.hostile.empty())
            std::cerr << "warning: " << e.hostile << "\n";
        // sshd insists on its privilege separation directory (the package's
        // service unit creates it at boot; no service runs here).
        fs::create_directories("/run/sshd");
        env = &e;
    }
    ~global_setup() {
        if (env) {
            std::error_code ec;
            fs::remove_all(env->dir, ec);
        }
    }
};
BOOST_TEST_GLOBAL_FIXTURE(global_setup);

std::uint16_t free_port() {
    asio::io_context ctx;
    asio::ip::tcp::acceptor a(ctx, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

// A running sshd; destroying it kills sshd (the child's destructor).
struct sshd {
    std::uint16_t port;
    std::unique_ptr<process::child> proc;
};

// Starts sshd and waits for its banner with our own probe; sshd exiting
// first (e.g. the port was taken meanwhile) is the abort hook.
asio::awaitable<sshd> start_sshd() {
    auto ex = co_await asio::this_coro::executor;
    for (int tries = 0;; ++tries) {
        sshd s{free_port(), nullptr};
        process::options o;
        o.argv = {"/usr/sbin/sshd",
                  "-D",
                  "-e",
                  "-f",
                  env->config.string(),
                  "-p",
                  std::to_string(s.port),
                  "-o",
                  "ListenAddress=127.0.0.1"};
        o.out.mode = process::stream_mode::null;
        // sshd's errors in the test log, without the line it writes for
        // every probe connection that leaves after the banner.
        o.err.mode = process::stream_mode::sink;
        o.err.sink = [](std::string_view line) {
            if (line.find("kex_exchange_identification") == std::string_view::npos)
                std::cerr << "sshd: " << line << "\n";
        };
        s.proc = std::make_unique<process::child>(ex, std::move(o));
        const pid_t pid = s.proc->pid();
        auto died = [pid]() -> asio::awaitable<std::string> {
            co_await process::wait_exit(pid, localvm::no_deadline);
            co_return "sshd exited";
        };
        ssh::probe_options po;
        po.timeout = 10s;
        try {
            auto banner = co_await ssh::wait_for_banner("127.0.0.1", s.port, po, died);
            BOOST_TEST(banner.starts_with("SSH-2.0-OpenSSH"), banner);
            co_return s;
        } catch (const localvm::error& e) {
            if (e.code() != localvm::make_error_code(errc::guest_died) || tries == 3)
                throw;
        }
    }
}

ssh::target target_for(const sshd& s) {
    ssh::target t;
    t.port = s.port;
    t.user = "root";
    t.identity_file = env->key;
    t.known_hosts_file = env->dir / "state dir %h" / ("known_hosts." + std::to_string(s.port));
    fs::create_directories(t.known_hosts_file.parent_path());
    ssh::reset_known_hosts(t);
    return t;
}

template <class F> void expect_error(F&& f, errc code, std::vector<std::string> fragments) {
    try {
        f();
        BOOST_FAIL("no exception");
    } catch (const localvm::error& e) {
        BOOST_TEST(e.code() == localvm::make_error_code(code), e.what());
        for (auto& frag : fragments)
            BOOST_TEST(std::string(e.what()).find(frag) != std::string::npos,
                       "'" << frag << "' not in: " << e.what());
    }
}

// Our children named `comm` (ssh, rsync) that still exist, zombies included.
int children_named(const std::string& comm) {
    int n = 0;
    for (const auto& d : fs::directory_iterator("/proc")) {
        std::string stat = read_all(d.path() / "stat");
        auto close = stat.rfind(')');
        auto open = stat.find('(');
        if (close == std::string::npos || open == std::string::npos)
            continue;
        std::istringstream rest(stat.substr(close + 2));
        char state;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == getpid() && stat.substr(open + 1, close - open - 1) == comm)
            ++n;
    }
    return n;
}

} // namespace

BOOST_AUTO_TEST_CASE(probe_sees_the_openssh_banner) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto s = co_await start_sshd(); // checks the banner itself
        auto banner = co_await ssh::wait_for_banner("127.0.0.1", s.port);
        BOOST_TEST(banner.starts_with("SSH-2.0-OpenSSH_"), banner);
        BOOST_TEST(banner.find('\r') == std::string::npos);
    });
}

BOOST_AUTO_TEST_CASE(shell_streams_stdout_and_stderr_apart) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto s = co_await start_sshd();
        std::vector<std::string> out, err;
        ssh::shell_options o;
        o.out = [&](std::string_view l) {
            out.emplace_back(l);
        };
        o.err = [&](std::string_view l) {
            err.emplace_back(l);
        };
        auto r =
            co_await ssh::shell(target_for(s), "echo one; echo oops >&2; printf 'two\\nthree'", o);
        BOOST_TEST(r.exit_status == 0);
        BOOST_TEST(out == (std::vector<std::string>{"one", "two", "three"}),
                   boost::test_tools::per_element());
        BOOST_TEST(err == (std::vector<std::string>{"oops"}), boost::test_tools::per_element());
        BOOST_TEST(r.output.empty());
    });
}

BOOST_AUTO_TEST_CASE(shell_captures_combined_output_and_reports_exit_status) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto s = co_await start_sshd();
        auto t = target_for(s);
        auto r = co_await ssh::shell(t, "echo to-stdout; echo to-stderr >&2; exit 42");
        BOOST_TEST(r.exit_status == 42);
        BOOST_TEST(r.output.find("to-stdout\n") != std::string::npos, r.output);
        BOOST_TEST(r.output.find("to-stderr\n") != std::string::npos, r.output);
        // An argv, quoted word by word for the remote shell.
        // (the vector is a named local: GCC 12 rejects an initializer list
        // inside a co_await expression, "array used as initializer")
        const std::vector<std::string> words = {"printf", "[%s]", "a b", "it's", "$HOME", ""};
        r = co_await ssh::shell(t, ssh::shell_join(words));
        BOOST_TEST(r.exit_status == 0);
        BOOST_TEST(r.output == "[a b][it's][$HOME][]\n");
        // The host key was learned on first use, in the per-VM file.
        BOOST_TEST(read_all(t.known_hosts_file).find("ssh-ed25519") != std::string::npos);
    });
}

BOOST_AUTO_TEST_CASE(shell_timeout_kills_ssh) {
    localvm::testing::run_coroutine(
        []() -> asio::awaitable<void> {
            auto s = co_await start_sshd();
            auto t = target_for(s);
            const fs::path pidfile = env->dir / "remote-sleep.pid";
            ssh::shell_options o;
            o.timeout = 2s;
            try {
                co_await ssh::shell(
                    t, "echo $$ > " + ssh::shell_quote(pidfile.string()) + "; exec sleep 600", o);
                BOOST_FAIL("no exception");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == localvm::make_error_code(errc::timeout), e.what());
                BOOST_TEST(std::string(e.what()).find("2000 ms") != std::string::npos, e.what());
            }
            BOOST_TEST(children_named("ssh") == 0);
            // Without a pty the remote command outlives ssh: end it by its pid.
            pid_t remote = std::atoi(read_all(pidfile).c_str());
            if (remote > 1)
                ::kill(remote, SIGKILL);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(shell_cancellation_kills_ssh) {
    localvm::testing::run_coroutine(
        []() -> asio::awaitable<void> {
            auto s = co_await start_sshd();
            auto t = target_for(s);
            auto ex = co_await asio::this_coro::executor;
            const fs::path pidfile = env->dir / "remote-sleep2.pid";
            // Cancel once the remote command has started (its first line), not
            // after a guessed delay: a never-expiring timer cancelled by the sink.
            bool started = false;
            asio::steady_timer timer(ex, asio::steady_timer::time_point::max());
            ssh::shell_options o;
            o.out = [&](std::string_view) {
                started = true;
                timer.expires_at(asio::steady_timer::time_point::min()); // fire now
            };
            auto outcome =
                co_await asio::experimental::make_parallel_group(
                    asio::co_spawn(ex,
                                   ssh::shell(t,
                                              "echo $$ > " + ssh::shell_quote(pidfile.string()) +
                                                  "; echo started; exec sleep 600",
                                              o),
                                   asio::deferred),
                    timer.async_wait(asio::deferred))
                    .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
            std::size_t first = std::get<0>(outcome)[0];
            std::exception_ptr e0 = std::get<1>(outcome);
            BOOST_TEST(first == 1u);
            BOOST_TEST(started);
            BOOST_TEST_REQUIRE(static_cast<bool>(e0));
            try {
                std::rethrow_exception(e0);
            } catch (const boost::system::system_error& e) {
                BOOST_TEST(e.code() == asio::error::operation_aborted, e.what());
            }
            BOOST_TEST(children_named("ssh") == 0);
            pid_t remote = std::atoi(read_all(pidfile).c_str());
            if (remote > 1)
                ::kill(remote, SIGKILL);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(ssh_failures_are_ssh_unreachable_with_stderr) {
    std::uint16_t port = 0;
    ssh::target wrong_key;
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        auto s = co_await start_sshd();
        wrong_key = target_for(s);
        wrong_key.identity_file = env->stranger;
        port = free_port(); // nothing listens there
        try {
            co_await ssh::shell(wrong_key, "true");
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable), e.what());
            BOOST_TEST(std::string(e.what()).find("Permission denied") != std::string::npos,
                       e.what());
        }
        // A pinned host key that is not the server's.
        auto pinned = target_for(s);
        pinned.known_host_keys = {env->host_pub};
        ssh::reset_known_hosts(pinned);
        BOOST_TEST((co_await ssh::shell(pinned, "true")).exit_status == 0);
        pinned.known_host_keys = {
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleWZha2U"};
        ssh::reset_known_hosts(pinned);
        try {
            co_await ssh::shell(pinned, "true");
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable), e.what());
            BOOST_TEST(std::string(e.what()).find("Host key verification failed") !=
                           std::string::npos,
                       e.what());
        }
    });
    expect_error(
        [&] {
            localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
                auto t = wrong_key;
                t.identity_file = env->key;
                t.port = port;
                co_await ssh::shell(t, "true");
            });
        },
        errc::ssh_unreachable, {"Connection refused", "root@127.0.0.1:" + std::to_string(port)});
    expect_error(
        [&] {
            localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
                auto t = wrong_key;
                t.known_hosts_file.clear();
                co_await ssh::shell(t, "true");
            });
        },
        errc::invalid_argument, {"known_hosts_file"});
}

BOOST_AUTO_TEST_CASE(wait_for_login_succeeds_or_names_the_last_failure) {
    localvm::testing::run_coroutine([]() -> asio::awaitable<void> {
        auto s = co_await start_sshd();
        auto t = target_for(s);
        co_await ssh::wait_for_login(t);
        t.identity_file = env->stranger;
        ssh::login_options o;
        o.timeout = 1500ms;
        try {
            co_await ssh::wait_for_login(t, o);
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable), e.what());
            BOOST_TEST(std::string(e.what()).find("Permission denied") != std::string::npos,
                       e.what());
        }
    });
}

BOOST_AUTO_TEST_CASE(sync_copies_a_tree_with_spaces_excludes_and_chown) {
    const fs::path src = env->dir / "source tree";
    const fs::path dst = env->dir / "dest dir" / "it's here";
    fs::create_directories(src / "sub dir");
    std::ofstream(src / "a file.txt") << "hello\n";
    std::ofstream(src / "sub dir" / "b 'quoted'.txt") << "world\n";
    std::ofstream(src / "debug.log") << "excluded\n";
    fs::create_directories(dst.parent_path());
    std::vector<std::string> lines;
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        auto s = co_await start_sshd();
        ssh::sync_options o;
        o.chown = "nobody:nogroup";
        o.excludes = {"", "*.log"};
        o.output = [&](std::string_view l) {
            lines.emplace_back(l);
        };
        // Default rsync_path "sudo rsync": runs as root through sudo.
        co_await ssh::sync(target_for(s), src.string() + "/", dst.string(), o);
    });
    BOOST_TEST(read_all(dst / "a file.txt") == "hello\n");
    BOOST_TEST(read_all(dst / "sub dir" / "b 'quoted'.txt") == "world\n");
    BOOST_TEST(!fs::exists(dst / "debug.log"));
    struct stat st {};
    BOOST_TEST_REQUIRE(::stat((dst / "a file.txt").c_str(), &st) == 0);
    BOOST_TEST(st.st_uid == 65534u); // nobody
}

BOOST_AUTO_TEST_CASE(sync_failures) {
    const fs::path src = env->dir / "small";
    fs::create_directories(src);
    std::ofstream(src / "f") << "x";
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        auto s = co_await start_sshd();
        auto t = target_for(s);
        ssh::sync_options o;
        o.rsync_path = "rsync";
        try {
            co_await ssh::sync(t, (env->dir / "no such source").string(), "/tmp/x", o);
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            // rsync's exit 23 for a missing source is errc::not_found naming it.
            BOOST_TEST(e.code() == localvm::make_error_code(errc::not_found), e.what());
            BOOST_TEST(std::string(e.what()).find("does not exist") != std::string::npos,
                       e.what());
            BOOST_TEST(std::string(e.what()).find("no such source") != std::string::npos, e.what());
        }
        // Wrong key, then nothing listening: ssh_unreachable whether rsync
        // exits 255 or (noticing the dead stream first) 12. Repeated, as
        // which of the two rsync reports is a race.
        auto stranger = t;
        stranger.identity_file = env->stranger;
        for (int i = 0; i < 3; ++i) {
            try {
                co_await ssh::sync(stranger, src.string(), "/tmp/x", o);
                BOOST_FAIL("no exception");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable), e.what());
                BOOST_TEST(std::string(e.what()).find("Permission denied") != std::string::npos,
                           e.what());
            }
        }
        t.port = free_port();
        for (int i = 0; i < 5; ++i) {
            try {
                co_await ssh::sync(t, src.string(), "/tmp/x", o);
                BOOST_FAIL("no exception");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable), e.what());
                BOOST_TEST(std::string(e.what()).find("Connection refused") != std::string::npos,
                           e.what());
            }
        }
    });
}

BOOST_AUTO_TEST_CASE(the_users_and_the_systems_ssh_config_are_not_read) {
    BOOST_TEST_REQUIRE(env->hostile.empty(),
                       "the hostile configuration is not in place: " << env->hostile);
    const fs::path src = env->dir / "config-src";
    fs::create_directories(src);
    std::ofstream(src / "f") << "data\n";
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        auto s = co_await start_sshd();
        auto t = target_for(s);
        // The control: a plain ssh here does read the hostile files.
        process::options o;
        o.argv = {"ssh",
                  "-p",
                  std::to_string(s.port),
                  "-i",
                  env->key.string(),
                  "-o",
                  "BatchMode=yes",
                  "-o",
                  "StrictHostKeyChecking=no",
                  "root@127.0.0.1"}; // RemoteCommand: no command here
        o.stdin_mode = process::input_mode::null;
        o.out.mode = process::stream_mode::null;
        o.err.mode = process::stream_mode::null;
        co_await process::run(std::move(o));
        BOOST_TEST_REQUIRE(fs::exists(env->markers / "user-config"),
                           "the control ssh did not run the hostile ProxyCommand");
        for (const auto& m : markers_left())
            fs::remove(env->markers / m);

        // localvm's ssh: no ProxyCommand, LocalCommand, RemoteCommand or
        // control socket from either file.
        auto r = co_await ssh::shell(t, "echo plain");
        BOOST_TEST(r.exit_status == 0);
        BOOST_TEST(r.output == "plain\n");
        co_await ssh::wait_for_login(t);
        ssh::sync_options so;
        so.rsync_path = "rsync";
        co_await ssh::sync(t, src.string() + "/", (env->dir / "config-dst").string(), so);
        BOOST_TEST(read_all(env->dir / "config-dst" / "f") == "data\n");
        BOOST_TEST(markers_left().empty(), boost::test_tools::per_element());
        for (const auto& m : markers_left())
            BOOST_TEST_MESSAGE("left behind: " << m);
    });
}

BOOST_AUTO_TEST_CASE(a_user_name_that_looks_like_an_option_is_refused) {
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        auto s = co_await start_sshd();
        auto t = target_for(s);
        t.user = "-oProxyCommand=touch " + (env->markers / "from-user").string();
        try {
            co_await ssh::shell(t, "true");
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::make_error_code(errc::invalid_argument), e.what());
            BOOST_TEST(std::string(e.what()).find("is not a user name") != std::string::npos,
                       e.what());
        }
        try {
            co_await ssh::sync(t, env->dir.string(), "/tmp/never");
            BOOST_FAIL("no exception");
        } catch (const localvm::error& e) {
            BOOST_TEST(e.code() == localvm::make_error_code(errc::invalid_argument), e.what());
        }
    });
    for (const auto& m : markers_left())
        BOOST_TEST(m.find("from-user") == std::string::npos,
                   "ssh ran the user name as an option: " << m);
}

BOOST_AUTO_TEST_CASE(sync_copies_relative_sources_named_like_options_and_hosts) {
    const fs::path work = env->dir / "relative";
    const fs::path dst = env->dir / "relative-dst";
    fs::create_directories(work / "-x");
    fs::create_directories(dst);
    std::ofstream(work / "-n") << "dash n\n";
    std::ofstream(work / "a:b") << "colon\n";
    std::ofstream(work / "-x" / "inner") << "dir\n";
    const fs::path before = fs::current_path();
    fs::current_path(work);
    localvm::testing::run_coroutine([&]() -> asio::awaitable<void> {
        auto s = co_await start_sshd();
        auto t = target_for(s);
        ssh::sync_options so;
        so.rsync_path = "rsync";
        co_await ssh::sync(t, "-n", (dst / "got-n").string(), so);      // not --dry-run
        co_await ssh::sync(t, "a:b", (dst / "got-colon").string(), so); // not host "a"
        co_await ssh::sync(t, "-x/", (dst / "got-x").string(), so);     // not --one-file-system
    });
    fs::current_path(before);
    BOOST_TEST(read_all(dst / "got-n") == "dash n\n");
    BOOST_TEST(read_all(dst / "got-colon") == "colon\n");
    BOOST_TEST(read_all(dst / "got-x" / "inner") == "dir\n");
}

BOOST_AUTO_TEST_CASE(a_pinned_host_key_is_the_only_one_accepted) {
    const fs::path src = env->dir / "pin-src";
    fs::create_directories(src);
    std::ofstream(src / "f") << "x";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto s = co_await start_sshd();
            auto t = target_for(s);
            t.known_host_keys = {env->host_pub};
            // Whatever the file held before, the pinned key is what counts.
            std::ofstream(t.known_hosts_file)
                << "[127.0.0.1]:" << s.port << " " << read_all(env->stranger.string() + ".pub");
            BOOST_TEST((co_await ssh::shell(t, "true")).exit_status == 0);
            BOOST_TEST(read_all(t.known_hosts_file) == ssh::known_hosts_content(t));

            // The server's key is not the pinned one: every call says so, and
            // wait_for_login gives up at once instead of retrying to its deadline.
            t.known_host_keys = {read_all(env->stranger.string() + ".pub")};
            t.known_host_keys[0].pop_back(); // '\n'
            const std::string said = "did not match the pinned host key";
            try {
                co_await ssh::shell(t, "true");
                BOOST_FAIL("no exception");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable), e.what());
                BOOST_TEST(std::string(e.what()).find(said) != std::string::npos, e.what());
            }
            const auto begin = std::chrono::steady_clock::now();
            ssh::login_options lo;
            lo.timeout = 60s;
            try {
                co_await ssh::wait_for_login(t, lo);
                BOOST_FAIL("no exception");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable), e.what());
                BOOST_TEST(std::string(e.what()).find(said) != std::string::npos, e.what());
            }
            const bool fast = std::chrono::steady_clock::now() - begin < 30s;
            BOOST_TEST(fast, "wait_for_login retried a host key mismatch");
            ssh::sync_options so;
            so.rsync_path = "rsync";
            try {
                co_await ssh::sync(t, src.string(), (env->dir / "pin-dst").string(), so);
                BOOST_FAIL("no exception");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable), e.what());
                BOOST_TEST(std::string(e.what()).find(said) != std::string::npos, e.what());
            }
        },
        90s);
}

// ---- multiplexing: one master connection, shared ----

namespace {

// A multiplexed target whose master, should a check fail before the test
// ends it, leaves by itself half a minute after its last client.
ssh::target multiplexed_target(const sshd& s) {
    auto t = target_for(s);
    t.control_path = env->dir / ("mux-" + std::to_string(s.port) + ".sock");
    t.control_persist = 30s;
    BOOST_REQUIRE(ssh::multiplexed(t));
    return t;
}

// What /proc says about one fd of another process ("/dev/null", "pipe:[..]").
std::string fd_target(pid_t pid, int fd) {
    std::error_code ec;
    auto p = fs::read_symlink("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd), ec);
    return ec ? "(" + ec.message() + ")" : p.string();
}

asio::awaitable<std::string> connection_of(const ssh::target& t) {
    auto r = co_await ssh::shell(t, "echo $SSH_CONNECTION");
    BOOST_TEST(r.exit_status == 0);
    co_return r.output;
}

} // namespace

// The login that makes the master returns while the master runs on: so the
// master holds none of the pipes our process reads ssh's output from (else
// the login would wait for their end of file until the master exits).
BOOST_AUTO_TEST_CASE(the_first_login_leaves_a_master_that_later_calls_share) {
    const fs::path src = env->dir / "mux-src";
    fs::create_directories(src);
    std::ofstream(src / "f") << "shared\n";
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto s = co_await start_sshd();
            auto t = multiplexed_target(s);
            co_await ssh::wait_for_login(t);
            auto pid = co_await ssh::master_pid(t.control_path, 10s);
            BOOST_TEST_REQUIRE(pid.has_value(), "no master after the login");
            BOOST_TEST(children_named("ssh") == 0); // ours are reaped; the master is not ours
            BOOST_TEST(::getsid(*pid) != ::getsid(0)); // no terminal signal reaches it
            for (int fd : {0, 1, 2})
                BOOST_TEST(fd_target(*pid, fd) == "/dev/null", "master fd " << fd);
            struct stat st {};
            BOOST_TEST(::lstat(t.control_path.c_str(), &st) == 0);
            BOOST_TEST(S_ISSOCK(st.st_mode));
            BOOST_TEST((st.st_mode & 077) == 0u);

            // Sessions over the master share its TCP connection (one client
            // port); a target without a control path makes its own.
            const auto shared = co_await connection_of(t);
            BOOST_TEST(!shared.empty());
            BOOST_TEST(co_await connection_of(t) == shared);
            auto direct = t;
            direct.control_path.clear();
            BOOST_TEST(co_await connection_of(direct) != shared);

            // Output and exit status as without a master.
            std::vector<std::string> out, err;
            ssh::shell_options o;
            o.out = [&](std::string_view l) { out.emplace_back(l); };
            o.err = [&](std::string_view l) { err.emplace_back(l); };
            auto r = co_await ssh::shell(t, "echo one; echo oops >&2; exit 3", o);
            BOOST_TEST(r.exit_status == 3);
            BOOST_TEST(out == (std::vector<std::string>{"one"}), boost::test_tools::per_element());
            BOOST_TEST(err == (std::vector<std::string>{"oops"}), boost::test_tools::per_element());
            // rsync's ssh too.
            ssh::sync_options so;
            so.rsync_path = "rsync";
            co_await ssh::sync(t, src.string() + "/", (env->dir / "mux-dst").string(), so);
            BOOST_TEST(read_all(env->dir / "mux-dst" / "f") == "shared\n");
            BOOST_TEST((co_await ssh::master_pid(t.control_path, 10s) == pid));

            // Ending it: the process and its socket are gone.
            BOOST_TEST((co_await ssh::end_master(t.control_path, 10s) == ssh::master_end::ended));
            BOOST_TEST(!process::alive(*pid));
            BOOST_TEST(!fs::exists(t.control_path));
            BOOST_TEST((co_await ssh::end_master(t.control_path, 10s) == ssh::master_end::none));
            BOOST_TEST(children_named("ssh") == 0);
        },
        60s);
}

BOOST_AUTO_TEST_CASE(cancelling_a_shell_spares_the_master) {
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto s = co_await start_sshd();
            auto t = multiplexed_target(s);
            BOOST_TEST((co_await ssh::shell(t, "true")).exit_status == 0);
            auto pid = co_await ssh::master_pid(t.control_path, 10s);
            BOOST_TEST_REQUIRE(pid.has_value());
            auto ex = co_await asio::this_coro::executor;
            const fs::path pidfile = env->dir / "mux-sleep.pid";
            asio::steady_timer timer(ex, asio::steady_timer::time_point::max());
            ssh::shell_options o;
            o.out = [&](std::string_view) {
                timer.expires_at(asio::steady_timer::time_point::min()); // fire now
            };
            auto outcome =
                co_await asio::experimental::make_parallel_group(
                    asio::co_spawn(ex,
                                   ssh::shell(t,
                                              "echo $$ > " + ssh::shell_quote(pidfile.string()) +
                                                  "; echo started; exec sleep 600",
                                              o),
                                   asio::deferred),
                    timer.async_wait(asio::deferred))
                    .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
            BOOST_TEST(std::get<0>(outcome)[0] == 1u);
            BOOST_TEST(static_cast<bool>(std::get<1>(outcome)));
            BOOST_TEST(children_named("ssh") == 0); // the client is reaped
            BOOST_TEST(process::alive(*pid));       // its master lives on
            BOOST_TEST((co_await ssh::master_pid(t.control_path, 10s) == pid));
            BOOST_TEST((co_await ssh::shell(t, "echo again")).output == "again\n");
            pid_t remote = std::atoi(read_all(pidfile).c_str());
            if (remote > 1)
                ::kill(remote, SIGKILL);
            BOOST_TEST((co_await ssh::end_master(t.control_path, 10s) == ssh::master_end::ended));
        },
        60s);
}

// A master killed outright leaves its socket: the next call takes over the
// path (ssh unlinks a socket nobody listens on), and end_master removes one.
BOOST_AUTO_TEST_CASE(a_stale_control_socket_is_taken_over_or_removed) {
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto s = co_await start_sshd();
            auto t = multiplexed_target(s);
            auto kill_master = [&]() -> asio::awaitable<void> {
                auto pid = co_await ssh::master_pid(t.control_path, 10s);
                BOOST_TEST_REQUIRE(pid.has_value());
                auto fd = process::pidfd::open(*pid);
                fd.send_signal(SIGKILL);
                BOOST_TEST(co_await fd.wait_exit(10s));
                BOOST_TEST(fs::exists(t.control_path)); // left behind
            };
            BOOST_TEST((co_await ssh::shell(t, "true")).exit_status == 0);
            co_await kill_master();
            BOOST_TEST(!(co_await ssh::master_pid(t.control_path, 10s)).has_value());
            BOOST_TEST((co_await ssh::shell(t, "echo back")).output == "back\n");
            co_await kill_master();
            BOOST_TEST((co_await ssh::end_master(t.control_path, 10s) == ssh::master_end::stale));
            BOOST_TEST(!fs::exists(t.control_path));
        },
        60s);
}

// The host key policy holds for the connection that becomes the master, and
// a path too long for a unix socket means no master, not an error.
BOOST_AUTO_TEST_CASE(masters_check_host_keys_and_need_a_short_path) {
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto s = co_await start_sshd();
            auto t = multiplexed_target(s);
            t.known_host_keys = {read_all(env->stranger.string() + ".pub")};
            t.known_host_keys[0].pop_back(); // '\n'
            try {
                co_await ssh::shell(t, "true");
                BOOST_FAIL("no exception");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == localvm::make_error_code(errc::ssh_unreachable), e.what());
                BOOST_TEST(std::string(e.what()).find("did not match the pinned host key") !=
                               std::string::npos,
                           e.what());
            }
            BOOST_TEST(!fs::exists(t.control_path));

            auto long_path = multiplexed_target(s);
            long_path.control_path =
                env->dir / std::string(ssh::max_control_path, 'x') / "ssh.sock";
            BOOST_TEST(!ssh::multiplexed(long_path));
            BOOST_TEST((co_await ssh::shell(long_path, "echo direct")).output == "direct\n");
            BOOST_TEST((co_await ssh::end_master(long_path.control_path, 10s) ==
                        ssh::master_end::none));
        },
        60s);
}
