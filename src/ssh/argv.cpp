// Pure builders: ssh and rsync argument vectors, quoting for the three
// parsers involved (the remote POSIX shell, ssh's option parser and path
// expansion, rsync's -e splitting).
#include "argv.hpp"

#include <localvm/ssh/command.hpp>
#include <localvm/ssh/master.hpp>

#include <algorithm>
#include <charconv>

namespace localvm::ssh {

namespace {

bool shell_safe(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_@%+:,./-").find(c) != std::string_view::npos;
}

// ssh expands %-tokens (and ${VAR}) in UserKnownHostsFile; "%%" is a literal
// percent. "${" cannot be escaped: detail::target_problem rejects it. (-i is
// checked with stat() unexpanded, then expanded when loaded, so a '%' can
// never work there: target_problem rejects that too.)
std::string ssh_path(const std::filesystem::path& p) {
    std::string out;
    for (char c : p.string()) {
        out.push_back(c);
        if (c == '%')
            out.push_back('%');
    }
    return out;
}

// A value for ssh's -o parser (argv_split in OpenSSH's misc.c): whitespace
// separates words, quotes group them, backslash escapes quote and backslash.
std::string ssh_option_quote(std::string_view value) {
    if (!value.empty() && value.find_first_of(" \t\"'\\#") == std::string_view::npos)
        return std::string(value);
    std::string out = "\"";
    for (char c : value) {
        if (c == '"' || c == '\\')
            out.push_back('\\');
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

std::string destination(const target& t) {
    return t.user.empty() ? t.host : t.user + "@" + t.host;
}

std::vector<std::string> ssh_options(const target& t, bool interactive, bool guest = true);

// ssh's time options take whole seconds: rounded up, at least 1.
long long whole_seconds(std::chrono::milliseconds d) {
    return std::max<long long>(1, (d.count() + 999) / 1000);
}

// The jump hop's ssh as one ProxyCommand line: the outer ssh hands it to
// `$SHELL -c` after expanding %-tokens, so each word is shell-quoted and
// every '%' doubled but those of the -W argument.
std::string proxy_command(const jump_host& j) {
    target hop;
    hop.host = j.host;
    hop.port = j.port;
    hop.user = j.user;
    hop.identity_file = j.identity_file;
    hop.known_hosts_file = j.known_hosts_file;
    hop.connect_timeout = j.connect_timeout;
    auto words = ssh_options(hop, false, false);
    std::string out;
    for (const auto& w : words) {
        for (char c : shell_quote(w)) {
            out.push_back(c);
            if (c == '%')
                out.push_back('%');
        }
        out.push_back(' ');
    }
    out += "-W %h:%p -- ";
    for (char c : shell_quote(destination(hop))) {
        out.push_back(c);
        if (c == '%')
            out.push_back('%');
    }
    return out;
}

// Everything up to (not including) the destination. `-F none` keeps the
// user's ~/.ssh/config and /etc/ssh/ssh_config out (a `Host *` block there
// could add ProxyCommand, RemoteCommand, agent or X11 forwarding, a control
// master); the explicit options below then hold whatever ssh's built-in
// defaults are. `guest`: the connection to the guest (a forward on this
// host, or inside the jump hop's connection), not the jump hop itself.
std::vector<std::string> ssh_options(const target& t, bool interactive, bool guest) {
    std::vector<std::string> a = {"ssh",
                                  "-F",
                                  "none",
                                  "-p",
                                  std::to_string(t.port),
                                  "-i",
                                  t.identity_file.string(),
                                  "-o",
                                  "IdentitiesOnly=yes"};
    if (interactive)
        a.push_back("-t");
    else
        a.insert(a.end(), {"-o", "BatchMode=yes"});
    a.insert(a.end(), {"-o", "ForwardAgent=no", "-o", "ForwardX11=no"});
    if (multiplexed(t))
        a.insert(a.end(), {"-o", "ControlMaster=auto", "-o",
                           "ControlPath=" + ssh_option_quote(ssh_path(t.control_path)), "-o",
                           "ControlPersist=" + std::to_string(whole_seconds(t.control_persist))});
    else
        a.insert(a.end(), {"-o", "ControlMaster=no", "-o", "ControlPath=none"});
    a.insert(
        a.end(),
        {"-o",
         "PermitLocalCommand=no",
         "-o",
         "GlobalKnownHostsFile=/dev/null",
         "-o",
         "UserKnownHostsFile=" + ssh_option_quote(ssh_path(t.known_hosts_file)),
         "-o",
         t.known_host_keys.empty() ? "StrictHostKeyChecking=accept-new" : "StrictHostKeyChecking=yes",
         "-o",
         "ConnectTimeout=" + std::to_string(whole_seconds(t.connect_timeout))});
    if (guest)
        a.insert(a.end(), {"-o", std::string(guest_kex_algorithms)});
    a.insert(a.end(), {"-o", "LogLevel=ERROR"});
    if (t.jump)
        a.insert(a.end(), {"-o", "ProxyCommand=" + proxy_command(*t.jump)});
    return a;
}

bool user_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

bool host_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == ':' || c == '_';
}

} // namespace

std::string shell_quote(std::string_view word) {
    if (!word.empty() && std::all_of(word.begin(), word.end(), shell_safe))
        return std::string(word);
    std::string out = "'";
    for (char c : word) {
        if (c == '\'')
            out += "'\\''";
        else
            out.push_back(c);
    }
    out.push_back('\'');
    return out;
}

std::string shell_join(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& w : argv) {
        if (!out.empty())
            out.push_back(' ');
        out += shell_quote(w);
    }
    return out;
}

bool multiplexed(const target& t) {
    return !t.control_path.empty() && !t.jump &&
           t.control_path.string().size() <= max_control_path;
}

std::vector<std::string> master_argv(const std::filesystem::path& control_path,
                                     std::string_view command) {
    return {"ssh",
            "-F",
            "none",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=" + ssh_option_quote(ssh_path(control_path)),
            "-o",
            "LogLevel=ERROR",
            "-O",
            std::string(command),
            "--",
            "localvm"};
}

std::optional<pid_t> parse_master_pid(std::string_view text) {
    constexpr std::string_view lead = "Master running (pid=";
    auto at = text.find(lead);
    if (at == std::string_view::npos)
        return std::nullopt;
    auto digits = text.substr(at + lead.size());
    long long pid = 0;
    auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (err != std::errc() || end == digits.data() || end == digits.data() + digits.size() ||
        *end != ')' || pid <= 1 || pid > 0x3fffffff)
        return std::nullopt;
    return static_cast<pid_t>(pid);
}

std::vector<std::string> ssh_argv(const target& t, std::string_view command, bool interactive) {
    auto a = ssh_options(t, interactive);
    // "--" ends ssh's options for good: the destination cannot be one, and
    // ssh does not parse options again after it (as it does without "--"),
    // so a command starting with '-' is the command.
    a.push_back("--");
    a.push_back(destination(t));
    if (!command.empty())
        a.emplace_back(command);
    return a;
}

std::string known_hosts_content(const target& t) {
    const std::string pattern =
        t.port == 22 ? t.host : "[" + t.host + "]:" + std::to_string(t.port);
    std::string out;
    for (const auto& key : t.known_host_keys) {
        if (key.empty())
            continue;
        out += pattern + " " + key + "\n";
    }
    return out;
}

std::string rsync_quote(std::string_view word) {
    if (!word.empty() && word.find_first_of(" '\"") == std::string_view::npos)
        return std::string(word);
    std::string out = "'";
    for (char c : word) {
        out.push_back(c);
        if (c == '\'')
            out.push_back('\''); // rsync: a doubled quote inside quotes is literal
    }
    out.push_back('\'');
    return out;
}

std::vector<std::string> rsync_argv(const target& t, const std::string& from, const std::string& to,
                                    const sync_options& opts) {
    const bool from_guest = opts.direction == sync_direction::from_guest;
    std::vector<std::string> a = {"rsync", "-a"};
    if (from_guest)
        a.push_back("--safe-links"); // the guest sends: no links out of the tree
    if (opts.delete_extraneous)
        a.push_back("--delete");
    if (!opts.chown.empty())
        a.push_back("--chown=" + opts.chown);
    for (const auto& e : opts.excludes)
        if (!e.empty())
            a.push_back("--exclude=" + e);
    if (!opts.rsync_path.empty())
        a.push_back("--rsync-path=" + opts.rsync_path);
    std::string e;
    for (const auto& w : ssh_options(t, false)) {
        if (!e.empty())
            e.push_back(' ');
        e += rsync_quote(w);
    }
    // A relative local path gets "./": rsync then reads "a:b" as a local
    // path, not host "a", and "-n" cannot look like an option even without "--".
    auto local = [](std::string p) {
        if (!p.empty() && p.front() != '/' && !p.starts_with("./"))
            p = "./" + p;
        return p;
    };
    a.insert(a.end(), {"-e", e, "--"});
    if (from_guest)
        a.insert(a.end(), {destination(t) + ":" + from, local(to)});
    else
        a.insert(a.end(), {local(from), destination(t) + ":" + to});
    return a;
}

namespace detail {

std::string target_problem(const target& t) {
    const std::string who = destination(t) + ":" + std::to_string(t.port);
    if (t.port == 0)
        return "ssh target " + who + ": port not set";
    if (t.host.empty())
        return "ssh target: host not set";
    if (t.host.front() == '-' || !std::all_of(t.host.begin(), t.host.end(), host_char))
        return "ssh target: host \"" + t.host +
               "\" is not a host name or IP address (letters, digits, '.', ':', '_', '-', not "
               "first)";
    if (!t.user.empty() && (t.user.size() > 32 || t.user.front() == '-' || t.user.front() == '.' ||
                            !std::all_of(t.user.begin(), t.user.end(), user_char)))
        return "ssh target: user \"" + t.user +
               "\" is not a user name (1-32 letters, digits, '_', '.', '-', not first '-' or '.')";
    if (t.identity_file.empty())
        return "ssh target " + who + ": identity_file not set";
    if (t.known_hosts_file.empty())
        return "ssh target " + who + ": known_hosts_file not set";
    for (const auto* p : {&t.identity_file, &t.known_hosts_file})
        if (p->string().find("${") != std::string::npos)
            return "ssh target " + who + ": path '" + p->string() +
                   "' contains \"${\", which ssh would expand";
    if (t.identity_file.string().find('%') != std::string::npos)
        return "ssh target " + who + ": identity_file '" + t.identity_file.string() +
               "' contains '%', which ssh would expand";
    if (!t.control_path.empty()) {
        const auto cp = t.control_path.string();
        if (!t.control_path.is_absolute())
            return "ssh target " + who + ": control_path '" + cp + "' is not absolute";
        if (cp.find("${") != std::string::npos)
            return "ssh target " + who + ": control_path '" + cp +
                   "' contains \"${\", which ssh would expand";
        if (cp.find_first_of("\n\r") != std::string::npos)
            return "ssh target " + who + ": control_path '" + cp + "' spans lines";
    }
    if (t.jump) {
        const auto& j = *t.jump;
        const std::string via = "ssh jump host " +
                                (j.user.empty() ? j.host : j.user + "@" + j.host) + ":" +
                                std::to_string(j.port);
        if (j.host.empty())
            return "ssh jump host: host not set";
        if (j.port == 0)
            return via + ": port not set";
        if (j.host.front() == '-' || !std::all_of(j.host.begin(), j.host.end(), host_char))
            return "ssh jump host: host \"" + j.host +
                   "\" is not a host name or IP address (letters, digits, '.', ':', '_', '-', not "
                   "first)";
        if (!j.user.empty() &&
            (j.user.size() > 32 || j.user.front() == '-' || j.user.front() == '.' ||
             !std::all_of(j.user.begin(), j.user.end(), user_char)))
            return "ssh jump host: user \"" + j.user +
                   "\" is not a user name (1-32 letters, digits, '_', '.', '-', not first '-' or "
                   "'.')";
        if (j.identity_file.empty())
            return via + ": identity_file not set";
        if (j.known_hosts_file.empty())
            return via + ": known_hosts_file not set";
        for (const auto* p : {&j.identity_file, &j.known_hosts_file})
            if (p->string().find("${") != std::string::npos)
                return via + ": path '" + p->string() + "' contains \"${\", which ssh would expand";
        if (j.identity_file.string().find('%') != std::string::npos)
            return via + ": identity_file '" + j.identity_file.string() +
                   "' contains '%', which ssh would expand";
        for (const auto* p : {&j.identity_file, &j.known_hosts_file})
            if (p->string().find_first_of("\n\r") != std::string::npos)
                return via + ": path '" + p->string() + "' spans lines";
    }
    for (const auto& key : t.known_host_keys)
        if (std::any_of(key.begin(), key.end(),
                        [](char c) { return c == '\n' || c == '\r' || c == '\0'; }))
            return "ssh target " + who + ": a known host key spans lines";
    return {};
}

bool host_key_rejected(const std::vector<std::string>& stderr_lines) {
    for (const auto& line : stderr_lines)
        if (line.find("REMOTE HOST IDENTIFICATION HAS CHANGED") != std::string::npos ||
            line.find("Host key verification failed") != std::string::npos ||
            (line.find("host key is known for") != std::string::npos &&
             line.find("strict checking") != std::string::npos))
            return true;
    return false;
}

std::string host_key_rejected_text(const target& t, const std::vector<std::string>& stderr_lines) {
    std::string out =
        t.known_host_keys.empty()
            ? "the guest's SSH host key did not match the one ssh accepted on first use (in " +
                  t.known_hosts_file.string() + ")"
            : "the guest's SSH host key did not match the pinned host key";
    std::string said;
    for (const auto& line : stderr_lines)
        if (line.starts_with("The fingerprint for") || line.starts_with("SHA256:") ||
            line.find("requested strict checking") != std::string::npos ||
            line.find("Host key verification failed") != std::string::npos)
            said += (said.empty() ? "" : " ") + line;
    return said.empty() ? out : out + "; ssh said: " + said;
}

} // namespace detail

} // namespace localvm::ssh
