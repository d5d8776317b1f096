#include <localvm/qmp/client.hpp>

#include "detail/await.hpp"
#include "detail/race.hpp"
#include "detail/unix_connect.hpp"
#include "sys/errno.hpp"
#include "sys/fd.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <cstring>
#include <deque>
#include <exception>
#include <unordered_map>
#include <variant>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>

namespace localvm::qmp {

namespace asio = boost::asio;
namespace json = boost::json;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

command_error::command_error(std::string command, std::string error_class, std::string desc)
    : localvm::error(errc::qmp_error, command + ": " + error_class + ": " + desc)
    , command_(std::move(command))
    , error_class_(std::move(error_class))
    , desc_(std::move(desc)) {}

namespace detail {

namespace {

template <class... F> struct overloaded : F... { using F::operator()...; };
template <class... F> overloaded(F...) -> overloaded<F...>;

// How long the first lane may take to end after another lane did.
constexpr auto first_lane_grace = std::chrono::seconds(1);

using localvm::detail::deadline_after;
using localvm::detail::ms;
using localvm::detail::scope_exit;
using localvm::detail::throw_if_cancelled;
using localvm::detail::wait_for_wakeup;

// One sendmsg of `byte` with `fd` as SCM_RIGHTS, not blocking; sendmsg's
// result. (A plain function: a coroutine frame would hold the control
// buffer misaligned, and cmsghdr's flexible array cannot sit in one.)
ssize_t send_byte_with_fd(int socket, char byte, int fd) {
    iovec iov{&byte, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        cmsghdr align;
    } control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return ::sendmsg(socket, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

} // namespace

struct pending_call {
    asio::steady_timer* timer = nullptr;
    bool done = false;
    std::optional<json::value> value;
    std::optional<failure> fail;
    error_code closed; // set when the connection ended first
    std::string closed_diagnostic;
};

struct client_impl;

struct subscriber {
    subscriber(asio::any_io_executor ex, std::weak_ptr<client_impl> o) : timer(ex), owner(std::move(o)) {}
    bool matches(const event& e) const {
        if (filter)
            return filter(e);
        return name.empty() || name == e.name;
    }

    std::string name;
    std::function<bool(const event&)> filter;
    std::size_t capacity = 0;
    std::deque<event> queue;
    std::uint64_t lost = 0;
    asio::steady_timer timer;
    bool waiting = false;
    bool closed = false;
    error_code close_code;
    std::string close_diagnostic;
    std::weak_ptr<client_impl> owner;
};

// One connection to one QMP monitor of the QEMU behind the client.
struct lane {
    lane(asio::any_io_executor ex, std::size_t i, std::string p, std::size_t max_message)
        : index(i)
        , path(std::move(p))
        , socket(ex)
        , dec(max_message)
        , write_signal(ex) {}

    std::size_t index;
    std::string path;
    asio::local::stream_protocol::socket socket;
    decoder dec;
    std::string out;     // commands not yet handed to the socket
    // Descriptors to send (SCM_RIGHTS) with the byte at the given offset of
    // `out`, in order: each goes with the first byte of its command.
    std::deque<std::pair<std::size_t, sys::unique_fd>> fds;
    std::string writing; // the bytes of the write in flight
    asio::steady_timer write_signal;
    std::size_t in_flight = 0; // commands sent here, not yet answered or abandoned
    bool ended = false;        // the server closed it (the client ends soon)
    std::optional<qmp::greeting> greet;
    asio::steady_timer* greeting_waiter = nullptr;
    std::array<char, 4096> readbuf{};
};

struct client_impl : std::enable_shared_from_this<client_impl> {
    client_impl(asio::any_io_executor e, client_options o, std::vector<std::string> paths)
        : ex(e)
        , options(o)
        , grace(e) {
        for (auto& p : paths)
            lanes.push_back(
                std::make_unique<lane>(e, lanes.size(), std::move(p), o.max_message_size));
    }

    asio::any_io_executor ex;
    client_options options;
    std::vector<std::unique_ptr<lane>> lanes; // lanes[0] delivers the events
    encoder enc;                              // ids unique across all lanes
    std::unordered_map<std::uint64_t, pending_call*> pending;
    std::vector<std::shared_ptr<subscriber>> subscribers;
    std::vector<asio::steady_timer*> close_waiters;
    bool oob = false;
    bool quit_sent = false;
    std::optional<event> shutdown;
    // A lane other than the first that ended, and how; `grace` then bounds
    // the wait for the first lane to end too.
    std::optional<std::pair<const lane*, std::string>> other_end;
    asio::steady_timer grace;
    connection_end end = connection_end::open;
    error_code close_code;
    std::string close_diagnostic;

    const std::string& path() const { return lanes.front()->path; }

    [[noreturn]] void throw_closed(const std::string& what) const {
        throw localvm::error(close_code, what + ": " + close_diagnostic);
    }

    // The peer ended a connection: clean when QEMU announced it (SHUTDOWN)
    // or was told to (quit) first. Every lane talks to the same QEMU, so one
    // ending ends them all.
    void peer_closed(lane& l, std::string diagnostic) {
        l.ended = true;
        if (l.index == 0) {
            finish(shutdown || quit_sent ? connection_end::clean : connection_end::unexpected,
                   errc::monitor_closed, l, std::move(diagnostic));
            return;
        }
        // Another lane ended first. QEMU writes its last events to every
        // monitor before it closes them, so the first lane may still hold
        // some: let it read to its own end, within `first_lane_grace`.
        if (other_end)
            return;
        other_end.emplace(&l, std::move(diagnostic));
        grace.expires_after(first_lane_grace);
        grace.async_wait([weak = weak_from_this()](error_code ec) {
            auto self = weak.lock();
            if (ec || !self || self->end != connection_end::open)
                return;
            auto& [ended, why] = *self->other_end;
            self->finish(self->shutdown || self->quit_sent ? connection_end::clean
                                                           : connection_end::unexpected,
                         errc::monitor_closed, *ended, why);
        });
    }

    void finish(connection_end how, error_code code, const lane& l, std::string diagnostic) {
        if (end != connection_end::open)
            return;
        end = how;
        close_code = code;
        close_diagnostic = "QMP connection to " + l.path + " " + std::move(diagnostic);
        error_code ignored;
        for (auto& x : lanes) {
            x->socket.shutdown(asio::socket_base::shutdown_both, ignored);
            x->socket.close(ignored);
            x->write_signal.cancel();
            if (x->greeting_waiter)
                x->greeting_waiter->cancel();
        }
        for (auto& [id, call] : pending) {
            call->done = true;
            call->closed = close_code;
            call->closed_diagnostic = close_diagnostic;
            call->timer->cancel();
        }
        pending.clear();
        for (auto& s : subscribers) {
            s->closed = true;
            s->close_code = close_code;
            s->close_diagnostic = close_diagnostic;
            s->timer.cancel();
        }
        for (auto* t : close_waiters)
            t->cancel();
        grace.cancel();
    }

    void finish(connection_end how, error_code code, std::string diagnostic) {
        finish(how, code, *lanes.front(), std::move(diagnostic));
    }

    void complete(const json::value& id, auto&& fill) {
        auto n = numeric_id(id);
        if (!n)
            return; // not ours (or QEMU could not read the id): nobody waits for it
        auto it = pending.find(*n);
        if (it == pending.end())
            return; // a cancelled or timed-out call's late reply
        auto* call = it->second;
        pending.erase(it);
        fill(*call);
        call->done = true;
        call->timer->cancel();
    }

    void dispatch(lane& l, message&& m) {
        std::visit(overloaded{
                       [&](qmp::greeting& g) {
                           if (l.greet)
                               return;
                           l.greet = std::move(g);
                           if (l.greeting_waiter)
                               l.greeting_waiter->cancel();
                       },
                       [&](success& s) {
                           complete(s.id, [&](pending_call& c) { c.value = std::move(s.result); });
                       },
                       [&](failure& f) {
                           complete(f.id, [&](pending_call& c) { c.fail = std::move(f); });
                       },
                       [&](event& e) {
                           // QEMU sends every event to every monitor: the
                           // first lane delivers them, the others only note
                           // a SHUTDOWN (it may precede their EOF).
                           if (e.name == "SHUTDOWN" && !shutdown)
                               shutdown = e;
                           if (l.index != 0)
                               return;
                           for (auto& s : subscribers) {
                               if (!s->matches(e))
                                   continue;
                               if (s->queue.size() >= s->capacity) {
                                   ++s->lost;
                                   continue;
                               }
                               s->queue.push_back(e);
                               s->timer.cancel();
                           }
                       },
                   },
                   m);
    }

    static asio::awaitable<void> read_loop(std::shared_ptr<client_impl> self, lane* l) {
        for (;;) {
            error_code ec;
            auto n = co_await l->socket.async_read_some(
                asio::buffer(l->readbuf), asio::redirect_error(asio::use_awaitable, ec));
            if (self->end != connection_end::open)
                co_return;
            if (ec == asio::error::eof) {
                self->peer_closed(*l, "ended (EOF)");
                co_return;
            }
            if (ec) {
                self->peer_closed(*l, "failed: " + ec.message());
                co_return;
            }
            std::string_view in(l->readbuf.data(), n);
            while (!in.empty() && self->end == connection_end::open) {
                auto m = l->dec.consume(in, ec);
                if (ec) {
                    self->finish(connection_end::protocol_error, ec, *l,
                                 "closed: the server sent a bad message (" + ec.message() + ")");
                    co_return;
                }
                if (m)
                    self->dispatch(*l, std::move(*m));
            }
        }
    }

    static asio::awaitable<void> write_loop(std::shared_ptr<client_impl> self, lane* l) {
        for (;;) {
            while (l->out.empty()) {
                if (self->end != connection_end::open)
                    co_return;
                co_await wait_for_wakeup(l->write_signal, clock_type::time_point::max());
            }
            if (self->end != connection_end::open)
                co_return;
            error_code ec;
            if (!l->fds.empty() && l->fds.front().first == 0) {
                ec = co_await send_with_fd(*l);
                if (ec) {
                    self->peer_closed(*l, "failed while passing a file descriptor: " +
                                              ec.message());
                    co_return;
                }
                continue;
            }
            // Everything up to the next command that carries a descriptor.
            const std::size_t n = l->fds.empty() ? l->out.size() : l->fds.front().first;
            l->writing.assign(l->out, 0, n);
            l->out.erase(0, n);
            for (auto& f : l->fds)
                f.first -= n;
            co_await asio::async_write(l->socket, asio::buffer(l->writing),
                                       asio::redirect_error(asio::use_awaitable, ec));
            l->writing.clear();
            if (ec) {
                self->peer_closed(*l, "failed while writing: " + ec.message());
                co_return;
            }
        }
    }

    // Sends the first byte of `out` with the first queued descriptor as
    // SCM_RIGHTS ancillary data (QEMU keeps the descriptors that came with
    // the latest read for the next `getfd`/`add-fd`), then drops both.
    static asio::awaitable<error_code> send_with_fd(lane& l) {
        for (;;) {
            error_code ec;
            co_await l.socket.async_wait(asio::socket_base::wait_write,
                                         asio::redirect_error(asio::use_awaitable, ec));
            if (ec)
                co_return ec;
            ssize_t sent = send_byte_with_fd(l.socket.native_handle(), l.out.front(),
                                             l.fds.front().second.get());
            if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (sent < 0)
                co_return error_code(errno, boost::system::system_category());
            l.out.erase(0, 1);
            l.fds.pop_front();
            for (auto& f : l.fds)
                f.first -= 1;
            co_return error_code();
        }
    }

    // Loops run detached from any caller, so nothing cancels them but
    // `finish`; should one still fail, the failure closes the connection
    // and reaches every waiter instead of vanishing.
    void spawn(asio::awaitable<void> (*loop)(std::shared_ptr<client_impl>, lane*), lane& l) {
        std::weak_ptr<client_impl> weak = shared_from_this();
        asio::co_spawn(ex, loop(shared_from_this(), &l), [weak](std::exception_ptr e) {
            if (!e)
                return;
            auto self = weak.lock();
            if (!self)
                return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                self->finish(connection_end::unexpected, errc::monitor_closed,
                             std::string("closed: internal failure: ") + x.what());
            } catch (...) {
                self->finish(connection_end::unexpected, errc::monitor_closed,
                             "closed: internal failure");
            }
        });
    }

    // The open lane with the fewest commands in flight (the first among
    // equals; the first lane while it is the only one left).
    lane& least_busy() {
        lane* best = lanes.front().get();
        for (auto& l : lanes)
            if (!l->ended && l->in_flight < best->in_flight)
                best = l.get();
        return *best;
    }

    static asio::awaitable<json::value> execute(std::shared_ptr<client_impl> self, lane* on,
                                                std::string command, json::object arguments,
                                                execute_options options) {
        if (self->end != connection_end::open)
            self->throw_closed(command);
        lane& l = on ? *on : self->least_busy();
        asio::steady_timer timer(self->ex);
        pending_call call;
        call.timer = &timer;
        sys::unique_fd passed;
        if (options.pass_fd >= 0) {
            // Our own copy: the caller may close theirs before it is sent.
            passed.reset(::fcntl(options.pass_fd, F_DUPFD_CLOEXEC, 0));
            if (!passed)
                throw localvm::error(errc::invalid_argument,
                                     command + ": cannot pass file descriptor " +
                                         std::to_string(options.pass_fd) + ": " +
                                         sys::errno_text(errno));
            l.fds.emplace_back(l.out.size(), std::move(passed));
        }
        auto id = self->enc.encode(l.out, command, arguments, options.out_of_band);
        if (command == "quit")
            self->quit_sent = true;
        self->pending.emplace(id, &call);
        ++l.in_flight;
        scope_exit forget{[&] {
            self->pending.erase(id);
            --l.in_flight;
        }};
        l.write_signal.cancel();

        auto deadline = deadline_after(options.timeout);
        while (!call.done) {
            bool expired = co_await wait_for_wakeup(timer, deadline);
            if (call.done)
                break;
            if (expired)
                throw localvm::error(errc::timeout, "QMP command " + command + ": no reply within " +
                                                        ms(options.timeout));
            co_await throw_if_cancelled();
        }
        if (call.closed)
            throw localvm::error(call.closed, command + ": " + call.closed_diagnostic);
        if (call.fail)
            throw command_error(command, std::move(call.fail->error_class),
                                std::move(call.fail->desc));
        co_return std::move(*call.value);
    }

    // Connects one lane, reads its greeting and negotiates capabilities
    // (`oob` when `want_oob` and offered); returns whether `oob` is on.
    static asio::awaitable<bool> handshake(std::shared_ptr<client_impl> self, lane& l,
                                           bool want_oob) {
        co_await localvm::detail::connect_unix(l.socket, l.path, "QMP socket",
                                               errc::monitor_closed);
        self->spawn(&client_impl::read_loop, l);
        self->spawn(&client_impl::write_loop, l);

        auto greeted = [&]() -> asio::awaitable<void> {
            asio::steady_timer timer(self->ex);
            scope_exit unregister{[&] {
                l.greeting_waiter = nullptr;
            }};
            while (!l.greet) {
                if (self->end != connection_end::open)
                    self->throw_closed("waiting for the QMP greeting");
                l.greeting_waiter = &timer;
                co_await wait_for_wakeup(timer, clock_type::time_point::max());
                if (!l.greet && self->end == connection_end::open)
                    co_await throw_if_cancelled();
            }
        };
        if (!want_oob) {
            // The command does not depend on the greeting: sent at once, it
            // shares the greeting's round trip (QEMU greets a connection
            // before it reads from it, and answers in order).
            co_await localvm::detail::all(
                greeted(),
                execute(self, &l, "qmp_capabilities", json::object(), execute_options()));
            co_return false;
        }
        co_await greeted();
        bool offered = false;
        for (auto& c : l.greet->capabilities)
            offered = offered || c == "oob";
        json::object args;
        if (offered)
            args["enable"] = json::array{"oob"};
        co_await execute(self, &l, "qmp_capabilities", std::move(args), execute_options());
        co_return offered;
    }

    // Every lane in turn; `oob` is on only when every lane has it.
    static asio::awaitable<void> handshake_all(std::shared_ptr<client_impl> self) {
        bool oob = self->options.enable_oob;
        for (auto& l : self->lanes)
            oob = co_await handshake(self, *l, oob);
        self->oob = oob;
    }
};

} // namespace detail

// --- subscription ----------------------------------------------------------

subscription::subscription(std::shared_ptr<detail::subscriber> s) : s_(std::move(s)) {}
subscription::subscription(subscription&&) noexcept = default;

subscription& subscription::operator=(subscription&& o) noexcept {
    if (this != &o) {
        subscription gone(std::move(*this));
        s_ = std::move(o.s_);
    }
    return *this;
}

subscription::~subscription() {
    if (!s_)
        return;
    if (auto owner = s_->owner.lock())
        std::erase(owner->subscribers, s_);
    s_->timer.cancel();
}

asio::awaitable<event> subscription::next(std::chrono::milliseconds timeout) {
    auto s = s_; // keeps the state alive even if *this is moved from meanwhile
    if (!s)
        throw localvm::error(errc::invalid_argument, "next() on a moved-from QMP subscription");
    if (s->waiting)
        throw localvm::error(errc::invalid_argument,
                             "another next() already waits on this QMP subscription");
    auto deadline = detail::deadline_after(timeout);
    const std::string what = s->name.empty() ? "a QMP event" : "QMP event " + s->name;
    while (s->queue.empty()) {
        if (s->closed)
            throw localvm::error(s->close_code, "waiting for " + what + ": " + s->close_diagnostic);
        s->waiting = true;
        detail::scope_exit idle{[&] { s->waiting = false; }};
        bool expired = co_await detail::wait_for_wakeup(s->timer, deadline);
        if (!s->queue.empty() || s->closed)
            continue;
        if (expired)
            throw localvm::error(errc::timeout, what + " did not arrive within " +
                                                    detail::ms(timeout));
        co_await detail::throw_if_cancelled();
    }
    event e = std::move(s->queue.front());
    s->queue.pop_front();
    co_return e;
}

std::optional<event> subscription::try_next() {
    if (!s_ || s_->queue.empty())
        return std::nullopt;
    event e = std::move(s_->queue.front());
    s_->queue.pop_front();
    return e;
}

std::size_t subscription::buffered() const noexcept { return s_ ? s_->queue.size() : 0; }
std::uint64_t subscription::lost() const noexcept { return s_ ? s_->lost : 0; }

// --- client ------------------------------------------------------------------

client::client(std::shared_ptr<detail::client_impl> impl) : impl_(std::move(impl)) {}
client::client(client&&) noexcept = default;

client& client::operator=(client&& o) noexcept {
    if (this != &o) {
        close();
        impl_ = std::move(o.impl_);
    }
    return *this;
}

client::~client() { close(); }

void client::close() noexcept {
    if (impl_)
        impl_->finish(connection_end::local, errc::monitor_closed, "closed by the client");
}

asio::awaitable<client> client::connect(std::string path, client_options options) {
    std::vector<std::string> paths;
    paths.push_back(std::move(path));
    return connect_lanes(std::move(paths), options);
}

asio::awaitable<client> client::connect_lanes(std::vector<std::string> paths,
                                              client_options options) {
    if (paths.empty())
        throw localvm::error(errc::invalid_argument, "QMP connect: no socket path given");
    auto ex = co_await asio::this_coro::executor;
    auto impl = std::make_shared<detail::client_impl>(ex, options, std::move(paths));
    asio::steady_timer deadline(ex, options.connect_timeout);
    // The first to finish decides: a failed handshake (or a cancellation)
    // ends the connect at once, the deadline only when it comes first.
    std::variant<std::monostate, std::monostate> outcome;
    try {
        outcome = co_await localvm::detail::race(detail::client_impl::handshake_all(impl),
                                                 deadline.async_wait(asio::use_awaitable));
    } catch (...) {
        impl->finish(connection_end::local, errc::monitor_closed, "closed: connecting failed");
        throw;
    }
    if (outcome.index() == 1) {
        impl->finish(connection_end::local, errc::timeout, "timed out while connecting");
        std::string where;
        for (auto& l : impl->lanes)
            where += (where.empty() ? "" : ", ") + l->path;
        throw localvm::error(errc::timeout, "connecting to QMP at " + where +
                                                ": no greeting and capabilities within " +
                                                detail::ms(options.connect_timeout));
    }
    co_return client(std::move(impl));
}

asio::awaitable<json::value> client::execute(std::string command, json::object arguments,
                                             execute_options options) {
    if (!impl_)
        throw localvm::error(errc::monitor_closed, command + ": moved-from QMP client");
    return detail::client_impl::execute(impl_, nullptr, std::move(command), std::move(arguments),
                                        options);
}

subscription client::subscribe(std::string name, std::size_t capacity) {
    auto s = std::make_shared<detail::subscriber>(impl_->ex, impl_);
    s->name = std::move(name);
    s->capacity = capacity ? capacity : impl_->options.event_buffer;
    if (impl_->end != connection_end::open) {
        s->closed = true;
        s->close_code = impl_->close_code;
        s->close_diagnostic = impl_->close_diagnostic;
    }
    impl_->subscribers.push_back(s);
    return subscription(std::move(s));
}

subscription client::subscribe(std::function<bool(const event&)> filter, std::size_t capacity) {
    auto sub = subscribe(std::string{}, capacity);
    sub.s_->filter = std::move(filter);
    return sub;
}

asio::awaitable<run_status> client::query_status() {
    auto v = co_await execute("query-status");
    auto* o = v.if_object();
    auto* st = o ? o->if_contains("status") : nullptr;
    auto* run = o ? o->if_contains("running") : nullptr;
    if (!st || !st->is_string() || !run || !run->is_bool())
        throw localvm::error(errc::protocol_error, "query-status: unexpected reply " +
                                                       json::serialize(v));
    co_return run_status{std::string(st->get_string()), run->get_bool()};
}

asio::awaitable<version> client::query_version() {
    auto v = co_await execute("query-version");
    auto* o = v.if_object();
    auto* q = o ? o->if_contains("qemu") : nullptr;
    auto* qo = q ? q->if_object() : nullptr;
    auto num = [&](const char* k) -> int {
        auto* x = qo ? qo->if_contains(k) : nullptr;
        if (!x || !x->is_int64())
            throw localvm::error(errc::protocol_error, "query-version: unexpected reply " +
                                                           json::serialize(v));
        return static_cast<int>(x->get_int64());
    };
    version out;
    out.major = num("major");
    out.minor = num("minor");
    out.micro = num("micro");
    if (auto* p = o->if_contains("package"); p && p->is_string())
        out.package = p->get_string();
    co_return out;
}

asio::awaitable<void> client::stop() { co_await execute("stop"); }
asio::awaitable<void> client::cont() { co_await execute("cont"); }
asio::awaitable<void> client::system_powerdown() { co_await execute("system_powerdown"); }

asio::awaitable<void> client::quit() {
    try {
        co_await execute("quit");
    } catch (const localvm::error& e) {
        // QEMU may close the socket before its reply reaches us.
        if (e.code() != errc::monitor_closed || !impl_ || impl_->end != connection_end::clean)
            throw;
    }
}

asio::awaitable<std::string> client::human_monitor_command(std::string command_line,
                                                           execute_options options) {
    json::object args;
    args["command-line"] = command_line;
    auto v = co_await execute("human-monitor-command", std::move(args), options);
    if (!v.is_string())
        throw localvm::error(errc::protocol_error,
                             "human-monitor-command: unexpected reply " + json::serialize(v));
    co_return std::string(v.get_string());
}

asio::awaitable<connection_end> client::wait_closed(std::chrono::milliseconds timeout) {
    auto impl = impl_;
    if (!impl)
        co_return connection_end::local;
    auto deadline = detail::deadline_after(timeout);
    asio::steady_timer timer(impl->ex);
    while (impl->end == connection_end::open) {
        impl->close_waiters.push_back(&timer);
        detail::scope_exit unregister{[&] { std::erase(impl->close_waiters, &timer); }};
        bool expired = co_await detail::wait_for_wakeup(timer, deadline);
        if (impl->end != connection_end::open)
            break;
        if (expired)
            throw localvm::error(errc::timeout, "QMP connection to " + impl->path() +
                                                    " did not end within " + detail::ms(timeout));
        co_await detail::throw_if_cancelled();
    }
    co_return impl->end;
}

const qmp::greeting& client::greeting() const noexcept {
    return *impl_->lanes.front()->greet;
}
std::size_t client::lanes() const noexcept {
    return impl_ ? impl_->lanes.size() : 0;
}
bool client::oob_enabled() const noexcept { return impl_ && impl_->oob; }
connection_end client::end() const noexcept {
    return impl_ ? impl_->end : connection_end::local;
}
const std::optional<event>& client::shutdown_event() const noexcept { return impl_->shutdown; }

} // namespace localvm::qmp
