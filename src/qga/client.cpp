#include <localvm/qga/client.hpp>
#include <localvm/qga/protocol.hpp>
#include <localvm/qmp/client.hpp>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <deque>
#include <random>

#include "detail/await.hpp"
#include "detail/backoff.hpp"
#include "detail/race.hpp"
#include "detail/unix_connect.hpp"

namespace localvm::qga {

namespace asio = boost::asio;
namespace json = boost::json;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;
using local_socket = asio::local::stream_protocol::socket;

namespace detail {

namespace {

using localvm::detail::scope_exit;

} // namespace

struct client_impl {
    client_impl(local_socket s, std::string n, client_options o)
        : socket(std::move(s))
        , name(std::move(n))
        , options(o)
        , sess(o.max_message_size) {
        // Sync tokens differ between clients of one channel: a previous
        // client's unread sync reply must not pass for ours.
        std::random_device rd;
        token = (std::uint64_t(rd()) << 32 | rd()) & ((std::uint64_t(1) << 53) - 1);
    }

    local_socket socket;
    std::string name;
    client_options options;
    session sess;
    std::uint64_t token = 0;
    std::string in;  // bytes read, not yet consumed
    std::string out; // the request being written
    std::array<char, 65536> readbuf{};
    bool closed = false;
    std::string closed_why;
    // One call at a time, in order: the holder, and the waiters behind it.
    struct waiter {
        explicit waiter(asio::any_io_executor ex)
            : timer(ex, clock_type::time_point::max()) {}
        asio::steady_timer timer;
        bool granted = false;
    };
    bool busy = false;
    std::deque<waiter*> queue;
    // Where a call is, for its timeout message.
    enum class phase { queued, syncing, calling };
    bool syncing_now = false; // a sync is under way (EOF then is no acceptance)

    void close(std::string why) noexcept {
        if (closed)
            return;
        closed = true;
        closed_why = std::move(why);
        error_code ignored;
        socket.shutdown(asio::socket_base::shutdown_both, ignored);
        socket.close(ignored);
    }

    [[noreturn]] void throw_closed(const std::string& command) const {
        throw localvm::error(errc::monitor_closed,
                             command + ": guest agent connection " + name + " " + closed_why);
    }

    asio::awaitable<void> acquire() {
        if (!busy) {
            busy = true;
            co_return;
        }
        waiter w(co_await asio::this_coro::executor);
        queue.push_back(&w);
        error_code ec;
        co_await w.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (w.granted)
            co_return;
        std::erase(queue, &w);
        throw boost::system::system_error(asio::error::operation_aborted);
    }

    void release() noexcept {
        if (queue.empty()) {
            busy = false;
            return;
        }
        auto* w = queue.front();
        queue.pop_front();
        w->granted = true;
        w->timer.cancel();
    }

    asio::awaitable<void> write(const std::string& command) {
        error_code ec;
        co_await asio::async_write(socket, asio::buffer(out),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::operation_aborted)
            throw boost::system::system_error(ec);
        if (ec) {
            close("failed while writing: " + ec.message());
            throw_closed(command);
        }
    }

    // Feeds buffered and new bytes to the session until the step ends. An
    // end of stream while a silent command (shutdown) waits counts as its
    // acceptance.
    asio::awaitable<outcome> read_outcome(const std::string& command, bool eof_accepts) {
        for (;;) {
            std::string_view view(in);
            while (!view.empty()) {
                error_code ec;
                auto o = sess.consume(view, ec);
                if (ec) {
                    in.erase(0, in.size() - view.size());
                    throw localvm::error(ec,
                                         command + ": bad reply from the guest agent at " + name);
                }
                if (o) {
                    in.erase(0, in.size() - view.size());
                    co_return std::move(*o);
                }
            }
            in.clear();
            error_code ec;
            auto n = co_await socket.async_read_some(asio::buffer(readbuf),
                                                     asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::operation_aborted)
                throw boost::system::system_error(ec);
            if (ec) {
                close(ec == asio::error::eof ? "ended (EOF)" : "failed: " + ec.message());
                if (eof_accepts && !syncing_now)
                    co_return outcome(qmp::success{json::value(sess.call_id()), json::value()});
                throw_closed(command);
            }
            in.append(readbuf.data(), n);
        }
    }

    asio::awaitable<void> do_sync(const std::string& command) {
        syncing_now = true;
        out.clear();
        sess.begin_sync(out, ++token & ((std::uint64_t(1) << 53) - 1));
        co_await write(command);
        co_await read_outcome(command, false);
        syncing_now = false;
    }

    // The call itself, holding the queue: resync when needed, then request
    // and reply. Whatever ends it early leaves the session to resync.
    asio::awaitable<json::value> run(request r, bool sync_only, phase& at) {
        co_await acquire();
        scope_exit done{[this] {
            if (sess.state() != session_state::ready)
                sess.abandon();
            syncing_now = false;
            release();
        }};
        if (closed)
            throw_closed(r.command);
        if (sess.state() != session_state::ready || sync_only) {
            at = phase::syncing;
            co_await do_sync(r.command);
        }
        at = phase::calling;
        if (sync_only)
            co_return json::value();
        out.clear();
        error_code ec;
        sess.begin_call(out, r.command, r.arguments, r.success_response, ec);
        if (ec) // not reached: the session is ready here
            throw localvm::error(ec, r.command + ": guest agent session not in step");
        co_await write(r.command);
        auto o = co_await read_outcome(r.command, !r.success_response);
        if (auto* f = std::get_if<qmp::failure>(&o))
            throw qmp::command_error(r.command, std::move(f->error_class), std::move(f->desc));
        co_return std::move(std::get<qmp::success>(o).result);
    }

    asio::awaitable<json::value> call(request r, clock_type::duration timeout,
                                      bool sync_only = false) {
        if (timeout.count() <= 0)
            timeout = options.call_timeout;
        auto command = r.command;
        phase at = phase::queued;
        asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
        auto outcome = co_await localvm::detail::race(run(std::move(r), sync_only, at),
                                                      timer.async_wait(asio::use_awaitable));
        if (outcome.index() == 1) {
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
            throw localvm::error(
                errc::timeout,
                "timed out after " + std::to_string(ms) + " ms waiting for the guest agent at " +
                    name + " to answer " + command +
                    (at == phase::syncing  ? " (it never answered the resync, guest-sync-delimited)"
                     : at == phase::queued ? " (still queued behind earlier calls)"
                                           : ""));
        }
        co_return std::move(std::get<0>(outcome));
    }
};

} // namespace detail

client::client(std::shared_ptr<detail::client_impl> impl)
    : impl_(std::move(impl)) {}
client::client(client&&) noexcept = default;
client& client::operator=(client&& o) noexcept {
    if (this != &o) {
        close();
        impl_ = std::move(o.impl_);
    }
    return *this;
}
client::~client() {
    close();
}

void client::close() noexcept {
    if (impl_)
        impl_->close("closed by the client");
}

const std::string& client::name() const noexcept {
    return impl_->name;
}

client client::adopt(local_socket socket, std::string name, client_options options) {
    return client(
        std::make_shared<detail::client_impl>(std::move(socket), std::move(name), options));
}

asio::awaitable<client> client::connect(std::string path, client_options options) {
    local_socket socket(co_await asio::this_coro::executor);
    co_await localvm::detail::with_deadline(
        localvm::detail::connect_unix(socket, path, "guest agent socket", errc::monitor_closed),
        options.connect_timeout,
        "a connection to guest agent socket " + path +
            " (its listen queue stayed full: another client holds the agent)");
    co_return adopt(std::move(socket), std::move(path), options);
}

asio::awaitable<void> client::sync(std::chrono::milliseconds timeout) {
    co_await impl_->call(request{"guest-sync-delimited", {}, true}, timeout, true);
}

asio::awaitable<json::value> client::execute(request r, std::chrono::milliseconds timeout) {
    co_return co_await impl_->call(std::move(r), timeout);
}

asio::awaitable<void> client::ping(std::chrono::milliseconds timeout) {
    co_await impl_->call(make_ping(), timeout);
}

namespace {

template <class T, class Parse>
T parsed(const json::value& v, Parse parse, const std::string& command, const std::string& name) {
    error_code ec;
    auto x = parse(v, ec);
    if (!x)
        throw localvm::error(ec, command + ": unexpected reply from the guest agent at " + name +
                                     ": " + json::serialize(v));
    return std::move(*x);
}

} // namespace

asio::awaitable<std::int64_t> client::exec_start(exec_request r, std::chrono::milliseconds timeout) {
    if (r.argv.empty())
        throw localvm::error(errc::invalid_argument, "guest-exec: argv is empty");
    auto v = co_await impl_->call(make_exec(r), timeout);
    co_return parsed<std::int64_t>(v, parse_exec_pid, "guest-exec", impl_->name);
}

asio::awaitable<exec_status> client::exec_status(std::int64_t pid, std::chrono::milliseconds timeout) {
    auto v = co_await impl_->call(make_exec_status(pid), timeout);
    co_return parsed<qga::exec_status>(v, parse_exec_status, "guest-exec-status", impl_->name);
}

asio::awaitable<exec_status> client::exec(exec_request r, std::chrono::milliseconds timeout) {
    if (timeout.count() <= 0)
        timeout = impl_->options.call_timeout;
    const auto deadline = clock_type::now() + timeout;
    auto remaining = [&] { return localvm::detail::time_left(deadline); };
    const auto program = r.argv.empty() ? std::string() : r.argv.front();
    auto pid = co_await exec_start(std::move(r), remaining());
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer poll(ex);
    localvm::detail::backoff interval(impl_->options.exec_poll_first,
                                      impl_->options.exec_poll_max);
    for (;;) {
        poll.expires_at(std::min(clock_type::now() + interval.next(), deadline));
        co_await poll.async_wait(asio::use_awaitable);
        if (clock_type::now() >= deadline)
            break;
        std::optional<qga::exec_status> s;
        try {
            s = co_await exec_status(pid, remaining());
        } catch (const localvm::error& e) {
            if (e.code() != errc::timeout)
                throw;
            break;
        }
        if (s->exited)
            co_return std::move(*s);
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    throw localvm::error(errc::timeout, "timed out after " + std::to_string(ms) +
                                            " ms waiting for guest-exec of " + program +
                                            " (guest pid " + std::to_string(pid) +
                                            ", still running) to exit");
}

asio::awaitable<std::int64_t> client::file_open(std::string path, std::string mode,
                                                std::chrono::milliseconds timeout) {
    auto v = co_await impl_->call(make_file_open(path, mode), timeout);
    co_return parsed<std::int64_t>(v, parse_file_handle, "guest-file-open", impl_->name);
}

asio::awaitable<file_chunk> client::file_read(std::int64_t handle, std::size_t count,
                                              std::chrono::milliseconds timeout) {
    auto v = co_await impl_->call(make_file_read(handle, count), timeout);
    co_return parsed<file_chunk>(v, parse_file_read, "guest-file-read", impl_->name);
}

asio::awaitable<std::size_t> client::file_write(std::int64_t handle, std::string bytes,
                                                std::chrono::milliseconds timeout) {
    auto v = co_await impl_->call(make_file_write(handle, bytes), timeout);
    co_return parsed<std::size_t>(v, parse_file_write, "guest-file-write", impl_->name);
}

asio::awaitable<void> client::file_close(std::int64_t handle, std::chrono::milliseconds timeout) {
    co_await impl_->call(make_file_close(handle), timeout);
}

asio::awaitable<std::vector<network_interface>>
client::network_interfaces(std::chrono::milliseconds timeout) {
    auto v = co_await impl_->call(make_network_get_interfaces(), timeout);
    co_return parsed<std::vector<network_interface>>(v, parse_network_interfaces,
                                                     "guest-network-get-interfaces", impl_->name);
}

asio::awaitable<void> client::set_time(std::optional<std::chrono::nanoseconds> since_epoch,
                                       std::chrono::milliseconds timeout) {
    co_await impl_->call(make_set_time(since_epoch), timeout);
}

asio::awaitable<void> client::shutdown(shutdown_mode mode, std::chrono::milliseconds timeout) {
    co_await impl_->call(make_shutdown(mode), timeout);
}

} // namespace localvm::qga
