#include <localvm/atomic_file.hpp>
#include <localvm/error.hpp>
#include <localvm/process/child.hpp>
#include <localvm/ssh/keygen.hpp>

#include <fstream>

namespace localvm::ssh {
namespace fs = std::filesystem;

namespace {

std::string first_line(const fs::path& p) {
    std::ifstream in(p);
    std::string line;
    if (!in || !std::getline(in, line) || line.empty())
        throw_error(errc::io_error, "cannot read the public key " + p.string());
    return line;
}

} // namespace

boost::asio::awaitable<std::string> ensure_key_pair(fs::path identity, std::string comment) {
    fs::path pub = identity.string() + ".pub";
    std::error_code ec;
    if (!fs::exists(identity, ec)) {
        if (identity.has_parent_path() && !fs::exists(identity.parent_path(), ec)) {
            fs::create_directories(identity.parent_path(), ec);
            if (ec)
                throw_error(errc::io_error, "cannot create " + identity.parent_path().string() +
                                                ": " + ec.message());
            fs::permissions(identity.parent_path(), fs::perms::owner_all, ec);
        }
        // ssh-keygen asks before overwriting a stale .pub; there is no private half for it.
        fs::remove(pub, ec);
        process::options o;
        o.argv = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                  identity.string()};
        co_await process::run_checked(std::move(o));
    } else if (!fs::exists(pub, ec)) {
        process::options o;
        o.argv = {"ssh-keygen", "-y", "-f", identity.string()};
        auto r = co_await process::run_checked(std::move(o));
        write_file_atomic(pub, r.out, fs::perms(0644));
    }
    co_return first_line(pub);
}

} // namespace localvm::ssh
