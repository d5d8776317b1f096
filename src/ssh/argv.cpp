// Pure builders: ssh and rsync argument vectors, quoting for the three
// parsers involved (the remote POSIX shell, ssh's option parser and path
// expansion, rsync's -e splitting).
#include "argv.hpp"

#include <localvm/ssh/command.hpp>

#include <algorithm>

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

// Everything up to (not including) the destination. `-F none` keeps the
// user's ~/.ssh/config and /etc/ssh/ssh_config out (a `Host *` block there
// could add ProxyCommand, RemoteCommand, agent or X11 forwarding, a control
// master); the explicit options below then hold whatever ssh's built-in
// defaults are.
std::vector<std::string> ssh_options(const target& t, bool interactive) {
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
    a.insert(
        a.end(),
        {"-o",
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
         "UserKnownHostsFile=" + ssh_option_quote(ssh_path(t.known_hosts_file)),
         "-o",
         t.known_host_keys.empty() ? "StrictHostKeyChecking=accept-new" : "StrictHostKeyChecking=yes",
         "-o",
         "ConnectTimeout=" + std::to_string(std::max<long long>(1, (t.connect_timeout.count() + 999) / 1000)),
         "-o",
         "LogLevel=ERROR"});
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
