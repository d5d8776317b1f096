// ssh and rsync argument vectors byte for byte; shell_quote round trips
// through a real /bin/sh; rsync_quote through rsync's -e splitting rules.
#define BOOST_TEST_MODULE ssh_argv
#include <localvm/ssh/command.hpp>
#include <localvm/ssh/master.hpp>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "argv.hpp"
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace std::chrono_literals;
using localvm::ssh::rsync_argv;
using localvm::ssh::rsync_quote;
using localvm::ssh::shell_join;
using localvm::ssh::shell_quote;
using localvm::ssh::ssh_argv;
using localvm::ssh::sync_options;
using localvm::ssh::target;
using strings = std::vector<std::string>;

namespace {

target vm() {
    target t;
    t.port = 2222;
    t.identity_file = "/home/me/.local/share/localvm/keys/id_ed25519";
    t.known_hosts_file = "/run/user/1000/localvm/dev/known_hosts";
    return t;
}

// Runs /bin/sh -c SCRIPT and returns its stdout (no shell on our side).
std::string sh(const std::string& script) {
    int fds[2];
    BOOST_REQUIRE(pipe(fds) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    std::string a0 = "/bin/sh", a1 = "-c";
    std::string a2 = script;
    char* argv[] = {a0.data(), a1.data(), a2.data(), nullptr};
    pid_t pid;
    BOOST_REQUIRE(posix_spawn(&pid, "/bin/sh", &fa, nullptr, argv, environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0)
        out.append(buf, static_cast<std::size_t>(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
    return out;
}

// rsync's -e splitting (main.c do_cmd): spaces separate words; ' or " start
// a quoted run; inside it, a doubled quote is a literal quote.
strings rsync_split(const std::string& cmd) {
    strings out;
    std::size_t i = 0;
    while (i < cmd.size()) {
        if (cmd[i] == ' ') {
            ++i;
            continue;
        }
        std::string w;
        char q = 0;
        while (i < cmd.size() && (cmd[i] != ' ' || q)) {
            char c = cmd[i];
            if (c == '\'' || c == '"') {
                if (!q) {
                    q = c;
                    ++i;
                    continue;
                }
                if (c == q) {
                    if (i + 1 < cmd.size() && cmd[i + 1] == q) {
                        w.push_back(q);
                        i += 2;
                        continue;
                    }
                    q = 0;
                    ++i;
                    continue;
                }
            }
            w.push_back(c);
            ++i;
        }
        BOOST_TEST(q == 0, "unterminated quote in " << cmd);
        out.push_back(w);
    }
    return out;
}

const strings nasty = {"",      "plain",     "a b",  "it's", "'",       "''", "\"dq\"", "$HOME",
                       "`id`",  "$(id)",     "a\\b", "*",    "?",       "~",  "~root",  "-n",
                       "a\nb",  "tab\there", "!",    "#x",   "semi;co", "&",  "|",      "<>",
                       "{a,b}", "[x]",       "é ü",  "=",    "FOO=bar", "%",  "a%b",    "--x=y z",
                       " lead", "trail ",    "\\",   "a'b'c"};

} // namespace

BOOST_AUTO_TEST_CASE(shell_quote_leaves_plain_words_alone) {
    BOOST_TEST(shell_quote("ls") == "ls");
    BOOST_TEST(shell_quote("/usr/bin/env") == "/usr/bin/env");
    BOOST_TEST(shell_quote("a-b_c.d,e:f@g%h+i") == "a-b_c.d,e:f@g%h+i");
    BOOST_TEST(shell_quote("") == "''");
    BOOST_TEST(shell_quote("a b") == "'a b'");
    BOOST_TEST(shell_quote("it's") == "'it'\\''s'");
    BOOST_TEST(shell_quote("FOO=bar") == "'FOO=bar'"); // not an assignment as the first word
    BOOST_TEST(shell_join({"echo", "a b", ""}) == "echo 'a b' ''");
}

BOOST_AUTO_TEST_CASE(shell_quote_round_trips_through_sh) {
    std::string expected;
    for (const auto& w : nasty) {
        expected += w;
        expected.push_back('\0');
    }
    // One word at a time (clear failures), then all of them joined.
    for (const auto& w : nasty) {
        std::string got = sh("printf '%s\\0' " + shell_quote(w));
        BOOST_TEST(got == w + std::string(1, '\0'),
                   "word [" << w << "] quoted as " << shell_quote(w));
    }
    BOOST_TEST(sh("printf '%s\\0' " + shell_join(nasty)) == expected);
    // As ssh delivers it: the remote shell parses the joined command line.
    BOOST_TEST(sh(shell_join({"printf", "%s\\0", "x y", "$HOME"})) ==
               std::string("x y\0$HOME\0", 10));
}

BOOST_AUTO_TEST_CASE(ssh_argv_batch) {
    BOOST_TEST(ssh_argv(vm(), "uname -a") ==
                   (strings{"ssh",
                            "-F",
                            "none",
                            "-p",
                            "2222",
                            "-i",
                            "/home/me/.local/share/localvm/keys/id_ed25519",
                            "-o",
                            "IdentitiesOnly=yes",
                            "-o",
                            "BatchMode=yes",
                            "-o",
                            "ForwardAgent=no",
                            "-o",
                            "ForwardX11=no",
                            "-o",
                            "ControlMaster=no",
                            "-o",
                            "ControlPath=none",
                            "-o",
                            "PermitLocalCommand=no",
                            "-o",
                            "GlobalKnownHostsFile=/dev/null",
                            "-o",
                            "UserKnownHostsFile=/run/user/1000/localvm/dev/known_hosts",
                            "-o",
                            "StrictHostKeyChecking=accept-new",
                            "-o",
                            "ConnectTimeout=10",
                            "-o",
                            "KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org",
                            "-o",
                            "LogLevel=ERROR",
                            "--",
                            "debian@127.0.0.1",
                            "uname -a"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ssh_argv_interactive_and_login_shell) {
    auto t = vm();
    t.user = "root";
    t.host = "::1";
    t.connect_timeout = 3s;
    BOOST_TEST(ssh_argv(t, "", true) ==
                   (strings{"ssh",
                            "-F",
                            "none",
                            "-p",
                            "2222",
                            "-i",
                            "/home/me/.local/share/localvm/keys/id_ed25519",
                            "-o",
                            "IdentitiesOnly=yes",
                            "-t",
                            "-o",
                            "ForwardAgent=no",
                            "-o",
                            "ForwardX11=no",
                            "-o",
                            "ControlMaster=no",
                            "-o",
                            "ControlPath=none",
                            "-o",
                            "PermitLocalCommand=no",
                            "-o",
                            "GlobalKnownHostsFile=/dev/null",
                            "-o",
                            "UserKnownHostsFile=/run/user/1000/localvm/dev/known_hosts",
                            "-o",
                            "StrictHostKeyChecking=accept-new",
                            "-o",
                            "ConnectTimeout=3",
                            "-o",
                            "KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org",
                            "-o",
                            "LogLevel=ERROR",
                            "--",
                            "root@::1"}),
               boost::test_tools::per_element());
    BOOST_TEST(ssh_argv(t, "top", true).back() == "top");
    BOOST_TEST(ssh_argv(t, "top", true)[32] == "--");
    BOOST_TEST(ssh_argv(t, "top", true)[33] == "root@::1");
}

BOOST_AUTO_TEST_CASE(ssh_argv_paths_with_spaces_quotes_and_percent) {
    auto t = vm();
    t.identity_file = "/keys/my key's/id";
    t.known_hosts_file = "/state/my \"vm\"\\x %d/known hosts";
    t.known_host_keys = {"ssh-ed25519 AAAAC3Nza test"};
    auto a = ssh_argv(t, "true");
    BOOST_TEST(a[6] == "/keys/my key's/id");
    BOOST_TEST(a[24] == "UserKnownHostsFile=\"/state/my \\\"vm\\\"\\\\x %%d/known hosts\"");
    BOOST_TEST(a[26] == "StrictHostKeyChecking=yes"); // pinned keys
}

BOOST_AUTO_TEST_CASE(known_hosts_content_pins_keys_per_port) {
    auto t = vm();
    BOOST_TEST(localvm::ssh::known_hosts_content(t) == "");
    t.known_host_keys = {"ssh-ed25519 AAAA1 root@guest", "", "ecdsa-sha2-nistp256 AAAA2"};
    BOOST_TEST(localvm::ssh::known_hosts_content(t) ==
               "[127.0.0.1]:2222 ssh-ed25519 AAAA1 root@guest\n[127.0.0.1]:2222 "
               "ecdsa-sha2-nistp256 AAAA2\n");
    t.port = 22;
    BOOST_TEST(localvm::ssh::known_hosts_content(t) ==
               "127.0.0.1 ssh-ed25519 AAAA1 root@guest\n127.0.0.1 ecdsa-sha2-nistp256 AAAA2\n");
}

BOOST_AUTO_TEST_CASE(rsync_quote_survives_rsync_splitting) {
    BOOST_TEST(rsync_quote("ssh") == "ssh");
    BOOST_TEST(rsync_quote("a b") == "'a b'");
    BOOST_TEST(rsync_quote("it's") == "'it''s'");
    BOOST_TEST(rsync_quote("") == "''");
    std::string joined;
    for (const auto& w : nasty)
        joined += (joined.empty() ? "" : " ") + rsync_quote(w);
    BOOST_TEST(rsync_split(joined) == nasty, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(rsync_argv_defaults) {
    BOOST_TEST(
        rsync_argv(vm(), "./src/", "/srv/app", {}) ==
            (strings{"rsync", "-a", "--rsync-path=sudo rsync", "-e",
                     "ssh -F none -p 2222 -i /home/me/.local/share/localvm/keys/id_ed25519 -o "
                     "IdentitiesOnly=yes -o BatchMode=yes -o ForwardAgent=no -o ForwardX11=no "
                     "-o ControlMaster=no -o ControlPath=none -o PermitLocalCommand=no -o "
                     "GlobalKnownHostsFile=/dev/null -o "
                     "UserKnownHostsFile=/run/user/1000/localvm/dev/known_hosts -o "
                     "StrictHostKeyChecking=accept-new -o ConnectTimeout=10 -o KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org -o LogLevel=ERROR",
                     "--", "./src/", "debian@127.0.0.1:/srv/app"}),
        boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(rsync_argv_options_and_quoted_ssh_command) {
    auto t = vm();
    t.identity_file = "/keys/my key's/id";
    t.known_hosts_file = "/state/known hosts";
    sync_options o;
    o.chown = "debian:debian";
    o.excludes = {".git", "", "build dir/", ""};
    o.rsync_path = "rsync";
    o.delete_extraneous = true;
    auto a = rsync_argv(t, "/home/me/my project/", "/home/debian/my project", o);
    BOOST_TEST(
        a == (strings{"rsync", "-a", "--delete", "--chown=debian:debian", "--exclude=.git",
                      "--exclude=build dir/", "--rsync-path=rsync", "-e",
                      "ssh -F none -p 2222 -i '/keys/my key''s/id' -o IdentitiesOnly=yes -o "
                      "BatchMode=yes -o ForwardAgent=no -o ForwardX11=no -o ControlMaster=no "
                      "-o ControlPath=none -o PermitLocalCommand=no -o "
                      "GlobalKnownHostsFile=/dev/null -o 'UserKnownHostsFile=\"/state/known "
                      "hosts\"' -o StrictHostKeyChecking=accept-new -o ConnectTimeout=10 -o "
                      "KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org -o LogLevel=ERROR",
                      "--", "/home/me/my project/", "debian@127.0.0.1:/home/debian/my project"}),
        boost::test_tools::per_element());
    // rsync recovers exactly ssh_argv's options from -e.
    auto ssh = ssh_argv(t, "");
    ssh.pop_back(); // destination
    ssh.pop_back(); // "--"
    BOOST_TEST(rsync_split(a[8]) == ssh, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ssh_argv_a_hostile_user_stays_a_destination) {
    // Not an option even if the validation (shell, sync) were bypassed: it
    // comes after "--" and ssh reads it as user "-oProxyCommand=touch x";
    // after "--" ssh parses no options again, so "-n" is the command.
    auto t = vm();
    t.user = "-oProxyCommand=touch x";
    auto a = ssh_argv(t, "-n");
    BOOST_TEST_REQUIRE(a.size() >= 3u);
    BOOST_TEST(strings(a.end() - 3, a.end()) ==
                   (strings{"--", "-oProxyCommand=touch x@127.0.0.1", "-n"}),
               boost::test_tools::per_element()); // "-n": the remote command
}

BOOST_AUTO_TEST_CASE(rsync_argv_relative_sources_cannot_be_hosts_or_options) {
    auto last_two = [](const strings& a) {
        return strings(a.end() - 3, a.end());
    };
    BOOST_TEST(last_two(rsync_argv(vm(), "-n", "/x", {})) ==
                   (strings{"--", "./-n", "debian@127.0.0.1:/x"}),
               boost::test_tools::per_element());
    BOOST_TEST(last_two(rsync_argv(vm(), "a:b", "/x", {})) ==
                   (strings{"--", "./a:b", "debian@127.0.0.1:/x"}),
               boost::test_tools::per_element());
    BOOST_TEST(last_two(rsync_argv(vm(), "host::module/", "-x", {})) ==
                   (strings{"--", "./host::module/", "debian@127.0.0.1:-x"}),
               boost::test_tools::per_element());
    // Absolute paths (a ':' after a '/' is no host for rsync) and "./" as given.
    BOOST_TEST(rsync_argv(vm(), "/srv/a:b", "/x", {}).at(6) == "/srv/a:b");
    BOOST_TEST(rsync_argv(vm(), "./a", "/x", {}).at(6) == "./a");
    BOOST_TEST(rsync_argv(vm(), "../a", "/x", {}).at(6) == "./../a");
}

BOOST_AUTO_TEST_CASE(target_problem_rejects_users_and_hosts_ssh_would_misread) {
    auto problem = [](std::string user, std::string host) {
        auto t = vm();
        t.user = std::move(user);
        t.host = std::move(host);
        return localvm::ssh::detail::target_problem(t);
    };
    BOOST_TEST(problem("debian", "127.0.0.1") == "");
    BOOST_TEST(problem("", "127.0.0.1") == ""); // ssh's own default: the local user
    BOOST_TEST(problem("test_user.2-x", "::1") == "");
    BOOST_TEST(
        problem("-oProxyCommand=touch x", "127.0.0.1") ==
        "ssh target: user \"-oProxyCommand=touch x\" is not a user name (1-32 letters, digits, "
        "'_', '.', '-', not first '-' or '.')");
    for (const char* bad : {"-n", ".x", "a b", "a@b", "a:b", "a;b", "$(id)", "x\ny",
                            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})
        BOOST_TEST(problem(bad, "127.0.0.1").find("is not a user name") != std::string::npos, bad);
    for (const char* bad : {"-oProxyCommand=x", "a b", "user@host", "[::1]", "h/x"})
        BOOST_TEST(problem("debian", bad).find("is not a host name") != std::string::npos, bad);
}

BOOST_AUTO_TEST_CASE(host_key_rejection_is_recognised_in_ssh_stderr) {
    using localvm::ssh::detail::host_key_rejected;
    BOOST_TEST(host_key_rejected({"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
                                  "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @"}));
    BOOST_TEST(
        host_key_rejected({"Host key for [127.0.0.1]:2222 has changed and you have requested "
                           "strict checking.",
                           "Host key verification failed."}));
    BOOST_TEST(host_key_rejected({"No ED25519 host key is known for [127.0.0.1]:2222 and you have "
                                  "requested strict checking."}));
    BOOST_TEST(!host_key_rejected({"debian@127.0.0.1: Permission denied (publickey)."}));
    BOOST_TEST(
        !host_key_rejected({"ssh: connect to host 127.0.0.1 port 2222: Connection refused"}));
    BOOST_TEST(!host_key_rejected({}));
    auto t = vm();
    BOOST_TEST(localvm::ssh::detail::host_key_rejected_text(t, {}) ==
               "the guest's SSH host key did not match the one ssh accepted on first use (in "
               "/run/user/1000/localvm/dev/known_hosts)");
    t.known_host_keys = {"ssh-ed25519 AAAA"};
    // As OpenSSH 9.2 prints it: the banner is left out, the facts kept.
    const std::vector<std::string> said = {
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
        "Someone could be eavesdropping on you right now (man-in-the-middle attack)!",
        "It is also possible that a host key has just been changed.",
        "The fingerprint for the ED25519 key sent by the remote host is",
        "SHA256:YrhtmO9sf9WZMfIZrrcPwYkVvDCr7otp4cZP/jC4W3A.",
        "Please contact your system administrator.",
        "Add correct host key in /run/known_hosts to get rid of this message.",
        "Offending ED25519 key in /run/known_hosts:1",
        "  remove with:",
        "  ssh-keygen -f \"/run/known_hosts\" -R \"[127.0.0.1]:44859\"",
        "Host key for [127.0.0.1]:44859 has changed and you have requested strict checking.",
        "Host key verification failed."};
    BOOST_TEST(localvm::ssh::detail::host_key_rejected_text(t, said) ==
               "the guest's SSH host key did not match the pinned host key; ssh said: The "
               "fingerprint for the ED25519 key sent by the remote host is "
               "SHA256:YrhtmO9sf9WZMfIZrrcPwYkVvDCr7otp4cZP/jC4W3A. Host key for "
               "[127.0.0.1]:44859 has changed and you have requested strict checking. Host key "
               "verification failed.");
}

// Issue 16 item 3: guest -> host. The guest is the sender: remote path
// first, the local one made relative-safe, and links out of the tree refused.
BOOST_AUTO_TEST_CASE(rsync_argv_from_the_guest) {
    sync_options o;
    o.direction = localvm::ssh::sync_direction::from_guest;
    o.chown = "me:me";
    o.excludes = {"*.o", ""};
    auto a = rsync_argv(vm(), "/srv/app/", "out dir", o);
    BOOST_TEST_REQUIRE(a.size() >= 8u);
    BOOST_TEST(strings(a.begin(), a.begin() + 6) ==
                   (strings{"rsync", "-a", "--safe-links", "--chown=me:me", "--exclude=*.o",
                            "--rsync-path=sudo rsync"}),
               boost::test_tools::per_element());
    BOOST_TEST(strings(a.end() - 3, a.end()) ==
                   (strings{"--", "debian@127.0.0.1:/srv/app/", "./out dir"}),
               boost::test_tools::per_element());
    // A local destination that looks like a host or an option stays local.
    BOOST_TEST(rsync_argv(vm(), "/x", "h:y", o).back() == "./h:y");
    BOOST_TEST(rsync_argv(vm(), "/x", "-n", o).back() == "./-n");
    BOOST_TEST(rsync_argv(vm(), "/x", "/abs/-n", o).back() == "/abs/-n");
    BOOST_TEST(rsync_argv(vm(), "-x", "./d", o).at(a.size() - 2) == "debian@127.0.0.1:-x");
    // The -e command is the same both ways.
    BOOST_TEST(rsync_argv(vm(), "/x", "d", o).at(a.size() - 4) ==
               rsync_argv(vm(), "d", "/x", {}).at(4));
}

namespace {

localvm::ssh::jump_host libvirt_host() {
    localvm::ssh::jump_host j;
    j.host = "192.0.2.7";
    j.port = 2200;
    j.user = "root";
    j.identity_file = "/keys/libvirt id";
    j.known_hosts_file = "/state/known%hosts";
    return j;
}

const std::string jump_proxy_command =
    "ProxyCommand=ssh -F none -p 2200 -i '/keys/libvirt id' -o 'IdentitiesOnly=yes' -o "
    "'BatchMode=yes' -o 'ForwardAgent=no' -o 'ForwardX11=no' -o 'ControlMaster=no' -o "
    "'ControlPath=none' -o 'PermitLocalCommand=no' -o 'GlobalKnownHostsFile=/dev/null' -o "
    "'UserKnownHostsFile=/state/known%%%%hosts' -o 'StrictHostKeyChecking=accept-new' -o "
    "'ConnectTimeout=10' -o 'LogLevel=ERROR' -W %h:%p -- root@192.0.2.7";

// What ssh does to a ProxyCommand before its shell sees it: %h, %p and %%.
std::string expand_percent(const std::string& cmd, const std::string& host, std::uint16_t port) {
    std::string out;
    for (std::size_t i = 0; i < cmd.size(); ++i) {
        if (cmd[i] != '%' || i + 1 == cmd.size()) {
            out.push_back(cmd[i]);
            continue;
        }
        char c = cmd[++i];
        if (c == '%')
            out.push_back('%');
        else if (c == 'h')
            out += host;
        else if (c == 'p')
            out += std::to_string(port);
        else
            BOOST_FAIL("unexpected %-token %" << c << " in " << cmd);
    }
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(ssh_argv_through_a_jump_host) {
    auto t = vm();
    t.jump = libvirt_host();
    auto a = ssh_argv(t, "uname -a");
    auto direct = ssh_argv(vm(), "uname -a");
    // The direct argv with the ProxyCommand after LogLevel.
    direct.insert(direct.begin() + 33, {"-o", jump_proxy_command});
    BOOST_TEST(a == direct, boost::test_tools::per_element());
    // The guest's connection prefers X25519; the hop keeps ssh's default.
    BOOST_TEST(a[30] == std::string(localvm::ssh::guest_kex_algorithms));
    BOOST_TEST(a[32] == "LogLevel=ERROR");
    BOOST_TEST(a[34] == jump_proxy_command);
    BOOST_TEST(a[35] == "--");
    BOOST_TEST(jump_proxy_command.find("KexAlgorithms") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_jump_command_reaches_the_hop_ssh_word_for_word) {
    auto t = vm();
    auto j = libvirt_host();
    j.identity_file = "/keys/it's $HOME `id`/key";
    j.known_hosts_file = "/state/a \"b\" %d/known_hosts";
    t.jump = j;
    auto a = ssh_argv(t, "true");
    const std::string cmd = a[34].substr(std::string("ProxyCommand=").size());
    // ssh expands its tokens, then `$SHELL -c "exec CMD"` splits the words.
    const auto expanded = expand_percent(cmd, "127.0.0.1", 2222);
    BOOST_REQUIRE(expanded.starts_with("ssh "));
    auto words = sh("printf '%s\\n' " + expanded.substr(4));
    localvm::ssh::target hop;
    hop.host = j.host;
    hop.port = j.port;
    hop.user = j.user;
    hop.identity_file = j.identity_file;
    hop.known_hosts_file = j.known_hosts_file;
    auto expected = ssh_argv(hop, "");
    expected.erase(expected.begin()); // "ssh"
    // The hop keeps ssh's default key exchange.
    auto kex = std::find(expected.begin(), expected.end(),
                         std::string(localvm::ssh::guest_kex_algorithms));
    BOOST_REQUIRE(kex != expected.end());
    expected.erase(kex - 1, kex + 1);
    expected.insert(expected.end() - 2, {"-W", "127.0.0.1:2222"});
    std::string lines;
    for (const auto& w : expected)
        lines += w + "\n";
    BOOST_TEST(words == lines);
    // The hop's own ssh expands its known_hosts path once more: "%%d" is "%d".
    BOOST_TEST(words.find("UserKnownHostsFile=\"/state/a \\\"b\\\" %%d/known_hosts\"") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(rsync_argv_through_a_jump_host) {
    auto t = vm();
    t.jump = libvirt_host();
    auto a = rsync_argv(t, "./src/", "/srv/app", {});
    BOOST_TEST(a.size() == 8u);
    BOOST_TEST(a[4] == "ssh -F none -p 2222 -i /home/me/.local/share/localvm/keys/id_ed25519 -o "
                       "IdentitiesOnly=yes -o BatchMode=yes -o ForwardAgent=no -o ForwardX11=no "
                       "-o ControlMaster=no -o ControlPath=none -o PermitLocalCommand=no -o "
                       "GlobalKnownHostsFile=/dev/null -o "
                       "UserKnownHostsFile=/run/user/1000/localvm/dev/known_hosts -o "
                       "StrictHostKeyChecking=accept-new -o ConnectTimeout=10 -o KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org -o LogLevel=ERROR -o "
                       "'ProxyCommand=ssh -F none -p 2200 -i ''/keys/libvirt id'' -o "
                       "''IdentitiesOnly=yes'' -o ''BatchMode=yes'' -o ''ForwardAgent=no'' -o "
                       "''ForwardX11=no'' -o ''ControlMaster=no'' -o ''ControlPath=none'' -o "
                       "''PermitLocalCommand=no'' -o ''GlobalKnownHostsFile=/dev/null'' -o "
                       "''UserKnownHostsFile=/state/known%%%%hosts'' -o "
                       "''StrictHostKeyChecking=accept-new'' -o ''ConnectTimeout=10'' -o "
                       "''LogLevel=ERROR'' -W %h:%p -- root@192.0.2.7'");
    // rsync recovers exactly ssh_argv's options from -e.
    auto ssh = ssh_argv(t, "");
    ssh.pop_back(); // destination
    ssh.pop_back(); // "--"
    BOOST_TEST(rsync_split(a[4]) == ssh, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(target_problem_checks_the_jump_host) {
    auto problem = [](auto change) {
        auto t = vm();
        t.jump = libvirt_host();
        change(*t.jump);
        return localvm::ssh::detail::target_problem(t);
    };
    using localvm::ssh::jump_host;
    BOOST_TEST(problem([](jump_host&) {}) == "");
    BOOST_TEST(problem([](jump_host& j) { j.user.clear(); }) == "");
    BOOST_TEST(problem([](jump_host& j) { j.host.clear(); }) == "ssh jump host: host not set");
    BOOST_TEST(problem([](jump_host& j) { j.port = 0; }) ==
               "ssh jump host root@192.0.2.7:0: port not set");
    BOOST_TEST(problem([](jump_host& j) {
                   j.host = "-oProxyCommand=x";
               }).find("is not a host name") != std::string::npos);
    BOOST_TEST(problem([](jump_host& j) { j.user = "a b"; }).find("is not a user name") !=
               std::string::npos);
    BOOST_TEST(problem([](jump_host& j) { j.identity_file.clear(); }) ==
               "ssh jump host root@192.0.2.7:2200: identity_file not set");
    BOOST_TEST(problem([](jump_host& j) { j.known_hosts_file.clear(); }) ==
               "ssh jump host root@192.0.2.7:2200: known_hosts_file not set");
    BOOST_TEST(problem([](jump_host& j) {
                   j.identity_file = "/k/%d";
               }).find("contains '%', which ssh would expand") != std::string::npos);
    BOOST_TEST(problem([](jump_host& j) {
                   j.known_hosts_file = "/k/${HOME}";
               }).find("which ssh would expand") != std::string::npos);
    BOOST_TEST(problem([](jump_host& j) { j.known_hosts_file = "/k/a\nb"; }).find("spans lines") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(connect_timeout_is_whole_seconds_rounded_up) {
    auto connect_timeout_of = [](std::chrono::milliseconds d) {
        auto t = vm();
        t.connect_timeout = d;
        for (const auto& a : ssh_argv(t, "true"))
            if (a.starts_with("ConnectTimeout="))
                return a;
        return std::string("none");
    };
    BOOST_TEST(connect_timeout_of(std::chrono::milliseconds(2500)) == "ConnectTimeout=3");
    BOOST_TEST(connect_timeout_of(std::chrono::milliseconds(2000)) == "ConnectTimeout=2");
    BOOST_TEST(connect_timeout_of(std::chrono::milliseconds(1)) == "ConnectTimeout=1");
    BOOST_TEST(connect_timeout_of(std::chrono::milliseconds(0)) == "ConnectTimeout=1");
}

// ---- multiplexing ----

BOOST_AUTO_TEST_CASE(ssh_argv_with_a_control_path) {
    auto t = vm();
    t.control_path = "/run/user/1000/localvm/dev/ssh.sock";
    t.control_persist = std::chrono::milliseconds(90500);
    BOOST_TEST(ssh_argv(t, "uname -a") ==
                   (strings{"ssh",
                            "-F",
                            "none",
                            "-p",
                            "2222",
                            "-i",
                            "/home/me/.local/share/localvm/keys/id_ed25519",
                            "-o",
                            "IdentitiesOnly=yes",
                            "-o",
                            "BatchMode=yes",
                            "-o",
                            "ForwardAgent=no",
                            "-o",
                            "ForwardX11=no",
                            "-o",
                            "ControlMaster=auto",
                            "-o",
                            "ControlPath=/run/user/1000/localvm/dev/ssh.sock",
                            "-o",
                            "ControlPersist=91",
                            "-o",
                            "PermitLocalCommand=no",
                            "-o",
                            "GlobalKnownHostsFile=/dev/null",
                            "-o",
                            "UserKnownHostsFile=/run/user/1000/localvm/dev/known_hosts",
                            "-o",
                            "StrictHostKeyChecking=accept-new",
                            "-o",
                            "ConnectTimeout=10",
                            "-o",
                            "KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org",
                            "-o",
                            "LogLevel=ERROR",
                            "--",
                            "debian@127.0.0.1",
                            "uname -a"}),
               boost::test_tools::per_element());
    // The default persistence: ten minutes; at least one second.
    t.control_persist = target().control_persist;
    BOOST_TEST(ssh_argv(t, "true")[20] == "ControlPersist=600");
    t.control_persist = std::chrono::milliseconds(0);
    BOOST_TEST(ssh_argv(t, "true")[20] == "ControlPersist=1");
    // Interactive sessions share the master too (one word fewer: -t).
    t.control_persist = 60s;
    auto i = ssh_argv(t, "", true);
    BOOST_TEST(strings(i.begin() + 14, i.begin() + 20) ==
                   (strings{"-o", "ControlMaster=auto", "-o",
                            "ControlPath=/run/user/1000/localvm/dev/ssh.sock", "-o",
                            "ControlPersist=60"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(control_paths_are_escaped_like_the_known_hosts_path) {
    auto t = vm();
    t.control_path = "/state/my \"vm\" 100%/ssh.sock";
    t.known_hosts_file = "/state/my \"vm\" 100%/known_hosts";
    auto a = ssh_argv(t, "true");
    BOOST_TEST(a[18] == "ControlPath=\"/state/my \\\"vm\\\" 100%%/ssh.sock\"");
    BOOST_TEST(a[26] == "UserKnownHostsFile=\"/state/my \\\"vm\\\" 100%%/known_hosts\"");
    t.control_path = "/s/a%Cb";
    BOOST_TEST(ssh_argv(t, "true")[18] == "ControlPath=/s/a%%Cb");
}

BOOST_AUTO_TEST_CASE(a_control_path_too_long_for_a_socket_means_no_multiplexing) {
    using localvm::ssh::max_control_path;
    using localvm::ssh::multiplexed;
    BOOST_TEST(max_control_path == 90u); // 107 bytes of sun_path less ssh's ".XXXXXXXXXXXXXXXX"
    auto t = vm();
    BOOST_TEST(!multiplexed(t)); // unset
    t.control_path = "/" + std::string(max_control_path - 1, 'a');
    BOOST_TEST(multiplexed(t));
    BOOST_TEST(ssh_argv(t, "true")[16] == "ControlMaster=auto");
    t.control_path += "b";
    BOOST_TEST(!multiplexed(t));
    BOOST_TEST(ssh_argv(t, "true") == ssh_argv(vm(), "true"), boost::test_tools::per_element());
    BOOST_TEST(localvm::ssh::detail::target_problem(t) == ""); // not an error
    // Through a jump host ssh would silence the hop's stderr: no multiplexing.
    t.control_path = "/run/vm/ssh.sock";
    t.jump = localvm::ssh::jump_host{"192.0.2.7", 22, "root", "/k", "/kh", 10s};
    BOOST_TEST(!multiplexed(t));
    auto a = ssh_argv(t, "true");
    BOOST_TEST(a[16] == "ControlMaster=no");
    BOOST_TEST(a[18] == "ControlPath=none");
}

BOOST_AUTO_TEST_CASE(rsync_argv_shares_the_master) {
    auto t = vm();
    t.control_path = "/run/my vm/ssh.sock";
    auto a = rsync_argv(t, "./src/", "/srv/app", {});
    BOOST_TEST(a[4] == "ssh -F none -p 2222 -i /home/me/.local/share/localvm/keys/id_ed25519 -o "
                       "IdentitiesOnly=yes -o BatchMode=yes -o ForwardAgent=no -o ForwardX11=no "
                       "-o ControlMaster=auto -o 'ControlPath=\"/run/my vm/ssh.sock\"' -o "
                       "ControlPersist=600 -o PermitLocalCommand=no -o "
                       "GlobalKnownHostsFile=/dev/null -o "
                       "UserKnownHostsFile=/run/user/1000/localvm/dev/known_hosts -o "
                       "StrictHostKeyChecking=accept-new -o ConnectTimeout=10 -o KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org -o LogLevel=ERROR");
    auto ssh = ssh_argv(t, "");
    ssh.pop_back(); // destination
    ssh.pop_back(); // "--"
    BOOST_TEST(rsync_split(a[4]) == ssh, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(target_problem_checks_the_control_path) {
    auto problem = [](std::string path) {
        auto t = vm();
        t.control_path = std::move(path);
        return localvm::ssh::detail::target_problem(t);
    };
    BOOST_TEST(problem("/run/vm/ssh.sock") == "");
    BOOST_TEST(problem("/run/100%/ssh.sock") == "");
    BOOST_TEST(problem("run/ssh.sock") ==
               "ssh target debian@127.0.0.1:2222: control_path 'run/ssh.sock' is not absolute");
    BOOST_TEST(problem("/run/${HOME}/s").find("which ssh would expand") != std::string::npos);
    BOOST_TEST(problem("/run/a\nb/s").find("spans lines") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(master_argv_talks_to_the_socket_only) {
    BOOST_TEST(localvm::ssh::master_argv("/run/my vm/100%/ssh.sock", "exit") ==
                   (strings{"ssh", "-F", "none", "-o", "ControlMaster=no", "-o",
                            "ControlPath=\"/run/my vm/100%%/ssh.sock\"", "-o", "LogLevel=ERROR",
                            "-O", "exit", "--", "localvm"}),
               boost::test_tools::per_element());
    BOOST_TEST(localvm::ssh::master_argv("/r/s", "check")[10] == "check");
}

BOOST_AUTO_TEST_CASE(the_master_pid_from_ssh_check) {
    using localvm::ssh::parse_master_pid;
    BOOST_TEST(parse_master_pid("Master running (pid=11009)\r\n").value_or(0) == 11009);
    BOOST_TEST(parse_master_pid("warning: x\nMaster running (pid=42)").value_or(0) == 42);
    BOOST_TEST(!parse_master_pid(""));
    BOOST_TEST(!parse_master_pid("Control socket connect(/r/s): Connection refused\r\n"));
    BOOST_TEST(!parse_master_pid("Master running (pid=)"));
    BOOST_TEST(!parse_master_pid("Master running (pid=12"));
    BOOST_TEST(!parse_master_pid("Master running (pid=12x)"));
    BOOST_TEST(!parse_master_pid("Master running (pid=-5)"));
    BOOST_TEST(!parse_master_pid("Master running (pid=1)"));
    BOOST_TEST(!parse_master_pid("Master running (pid=99999999999999999999)"));
}
