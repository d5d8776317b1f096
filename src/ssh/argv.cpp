// Pure builders: ssh and rsync argument vectors, quoting for the three
// parsers involved (the remote POSIX shell, ssh's option parser and path
// expansion, rsync's -e splitting).
#include <localvm/ssh/command.hpp>

#include "argv.hpp"

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

// Everything up to (not including) the destination.
std::vector<std::string> ssh_options(const target& t, bool interactive) {
    std::vector<std::string> a = {"ssh", "-p", std::to_string(t.port), "-i", t.identity_file.string(),
                                  "-o", "IdentitiesOnly=yes"};
    if (interactive)
        a.push_back("-t");
    else
        a.insert(a.end(), {"-o", "BatchMode=yes"});
    a.insert(a.end(), {"-o", "UserKnownHostsFile=" + ssh_option_quote(ssh_path(t.known_hosts_file)),
                       "-o",
                       t.known_host_keys.empty() ? "StrictHostKeyChecking=accept-new"
                                                 : "StrictHostKeyChecking=yes",
                       "-o",
                       "ConnectTimeout=" + std::to_string(std::max<long long>(1, t.connect_timeout.count())),
                       "-o", "LogLevel=ERROR"});
    return a;
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
    a.push_back(destination(t));
    if (!command.empty()) {
        a.push_back("--");
        a.emplace_back(command);
    }
    return a;
}

std::string known_hosts_content(const target& t) {
    const std::string pattern = t.port == 22 ? t.host : "[" + t.host + "]:" + std::to_string(t.port);
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
    std::vector<std::string> a = {"rsync", "-a"};
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
    a.insert(a.end(), {"-e", e, from, destination(t) + ":" + to});
    return a;
}

namespace detail {

std::string target_problem(const target& t) {
    const std::string who = destination(t) + ":" + std::to_string(t.port);
    if (t.port == 0)
        return "ssh target " + who + ": port not set";
    if (t.host.empty())
        return "ssh target: host not set";
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
    return {};
}

} // namespace detail

} // namespace localvm::ssh
