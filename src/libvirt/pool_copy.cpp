#include "pool_copy.hpp"

#include <localvm/error.hpp>
#include <localvm/image/digest.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>

#include "detail/await.hpp"
#include "libvirt/volume_xml.hpp"
#include "qemu/lock.hpp"
#include "sys/secure_dir.hpp"

namespace localvm::libvirt::detail {
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t piece = 1u << 20;

std::ifstream open_or_throw(const fs::path& file) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec))
        throw_error(errc::not_found, file.string() + " does not exist (or is not a regular file)");
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw_error(errc::io_error, "cannot open " + file.string());
    return in;
}

// The next piece of `in` into `buf` (empty at the end); throws on a read error.
std::string_view next_piece(std::ifstream& in, std::string& buf, const fs::path& file) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.bad())
        throw_error(errc::io_error, "cannot read " + file.string());
    return {buf.data(), static_cast<std::size_t>(in.gcount())};
}

// Uploads `file` into `vol` and checks it still has digest `hex`.
asio::awaitable<void> upload_file(client& c, vol_ref vol, const fs::path& file, std::uint64_t size,
                                  const std::string& hex) {
    auto in = open_or_throw(file);
    image::hasher h(image::digest_algorithm::sha256);
    auto up = co_await c.open_upload(std::move(vol), 0, size);
    std::string buf(piece, '\0');
    std::uint64_t sent = 0;
    for (;;) {
        auto p = next_piece(in, buf, file);
        if (p.empty())
            break;
        h.update(p);
        sent += p.size();
        co_await up.write(std::string(p));
    }
    if (sent != size || h.finish().hex != hex) {
        up.abort();
        throw_error(errc::io_error, file.string() + " changed while it was uploaded");
    }
    co_await up.finish();
}

} // namespace

asio::awaitable<std::optional<vol_ref>> find_volume(client& c, const pool_ref& pool,
                                                    std::string name) {
    constexpr std::int32_t no_storage_vol = 50; // VIR_ERR_NO_STORAGE_VOL
    try {
        co_return co_await c.lookup_volume(pool, std::move(name));
    } catch (const call_error& e) {
        if (e.libvirt_code() != no_storage_vol)
            throw;
    }
    co_return std::nullopt;
}

// libvirt sends no event when a volume is released, so the delete is
// tried again: 10 ms after the first refusal, then at most every 250 ms.
asio::awaitable<void> delete_released_volume(client& c, const vol_ref& vol,
                                             std::chrono::milliseconds limit) {
    constexpr std::int32_t operation_invalid = 55; // VIR_ERR_OPERATION_INVALID
    const auto deadline = std::chrono::steady_clock::now() + limit;
    auto pause = std::chrono::milliseconds(10);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        try {
            co_await c.delete_volume(vol);
            co_return;
        } catch (const call_error& e) {
            if (e.libvirt_code() != operation_invalid ||
                e.remote().message.value_or("").find("in use") == std::string::npos ||
                std::chrono::steady_clock::now() + pause > deadline)
                throw;
        }
        timer.expires_after(pause);
        co_await timer.async_wait(asio::use_awaitable);
        pause = std::min(pause * 2, std::chrono::milliseconds(250));
    }
}

std::string pool_copy_name(std::string_view sha256_hex) {
    return "localvm-sha256-" + std::string(sha256_hex);
}

std::string pool_copy_marker(std::string_view volume) {
    return std::string(volume) + ".complete";
}

asio::awaitable<std::string> file_sha256(fs::path file) {
    auto in = open_or_throw(file);
    auto ex = co_await asio::this_coro::executor;
    image::hasher h(image::digest_algorithm::sha256);
    std::string buf(piece, '\0');
    for (;;) {
        auto p = next_piece(in, buf, file);
        if (p.empty())
            break;
        h.update(p);
        co_await asio::post(ex, asio::use_awaitable);
        co_await localvm::detail::throw_if_cancelled();
    }
    co_return h.finish().hex;
}

asio::awaitable<std::pair<vol_ref, std::string>>
ensure_pool_copy(client& c, pool_ref pool, fs::path file, pool_copy_options opts) {
    auto say = [&opts](const std::string& line) {
        if (opts.say)
            opts.say(line);
    };
    const auto hex = co_await file_sha256(file);
    const auto name = pool_copy_name(hex);
    const auto marker_name = pool_copy_marker(name);

    // Socket paths are short: the lock is named by the digest's first 16 digits.
    const auto key = hex.substr(0, 16);
    sys::ensure_private_dir(opts.lock_dir, opts.lock_dir, "libvirt upload lock directory");
    auto lock = co_await qemu::detail::vm_lock::acquire(
        opts.lock_dir / (key + ".lock"), opts.lock_dir / (key + ".sock"), opts.lock_timeout,
        "the upload of " + file.string(), [&opts] {
            sys::ensure_private_dir(opts.lock_dir, opts.lock_dir, "libvirt upload lock directory");
        });

    auto vol = co_await find_volume(c, pool, name);
    auto marker = co_await find_volume(c, pool, marker_name);
    if (vol && marker) {
        say("reusing volume " + name + " in pool " + pool.name + " for " + file.string());
        auto path = co_await c.volume_path(*vol);
        co_return std::make_pair(*vol, std::move(path));
    }
    if (vol) {
        say("deleting volume " + name + ": an upload that did not finish");
        co_await c.delete_volume(*vol);
    }
    if (marker)
        co_await c.delete_volume(*marker);

    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    if (ec)
        throw_error(errc::io_error, "cannot stat " + file.string() + ": " + ec.message());
    std::optional<vol_ref> created;
    bool refused = false; // the daemon said no to the volume: nothing of ours to delete
    std::exception_ptr failure;
    try {
        try {
            created = co_await c.create_volume(pool, raw_volume_xml(name, size));
        } catch (const call_error&) {
            refused = true;
            throw;
        }
        say("uploading " + file.string() + " (" + std::to_string(size) + " bytes) as volume " +
            name + " in pool " + pool.name);
        co_await upload_file(c, *created, file, size, hex);
        co_await c.create_volume(pool, raw_volume_xml(marker_name, 0));
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        // asio would throw at the next co_await of a cancelled coroutine.
        co_await asio::this_coro::reset_cancellation_state();
        try {
            // A create or marker call cut short may still have been done
            // by the daemon: looked up by name. (One the daemon finishes
            // after this lookup leaves a volume without its marker, which
            // is never reused: the next upload replaces it.)
            if (!created && !refused)
                created = co_await find_volume(c, pool, name);
            if (created) {
                co_await delete_released_volume(c, *created, std::chrono::seconds(10));
                if (auto m = co_await find_volume(c, pool, marker_name))
                    co_await c.delete_volume(*m);
            }
        } catch (const std::exception&) {
            // The upload's failure is the one to report.
        }
        std::rethrow_exception(failure);
    }
    auto path = co_await c.volume_path(*created);
    co_return std::make_pair(*created, std::move(path));
}

} // namespace localvm::libvirt::detail
