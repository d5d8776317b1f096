#include <localvm/libvirt/client.hpp>
#include <localvm/libvirt/uri.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <csignal>
#include <deque>
#include <exception>
#include <functional>
#include <unordered_map>

#include "detail/await.hpp"
#include "detail/race.hpp"
#include "transport.hpp"

namespace localvm::libvirt {

namespace asio = boost::asio;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

namespace {

std::string describe(const remote_error& e) {
    return e.message.value_or("(no message)") + " (libvirt error " + std::to_string(e.code) +
           ", domain " + std::to_string(e.domain) + ")";
}

const char* procedure_name(std::uint32_t program, std::int32_t p) {
    if (program == qemu_program)
        return p == 1 ? "QEMU_DOMAIN_MONITOR_COMMAND" : "QEMU_PROC";
    switch (static_cast<remote_procedure>(p)) {
    case remote_procedure::connect_open:
        return "CONNECT_OPEN";
    case remote_procedure::connect_close:
        return "CONNECT_CLOSE";
    case remote_procedure::connect_get_version:
        return "CONNECT_GET_VERSION";
    case remote_procedure::node_get_info:
        return "NODE_GET_INFO";
    case remote_procedure::node_get_free_memory:
        return "NODE_GET_FREE_MEMORY";
    case remote_procedure::connect_get_capabilities:
        return "CONNECT_GET_CAPABILITIES";
    case remote_procedure::domain_create:
        return "DOMAIN_CREATE";
    case remote_procedure::domain_create_xml:
        return "DOMAIN_CREATE_XML";
    case remote_procedure::domain_define_xml:
        return "DOMAIN_DEFINE_XML";
    case remote_procedure::domain_get_xml_desc:
        return "DOMAIN_GET_XML_DESC";
    case remote_procedure::domain_get_info:
        return "DOMAIN_GET_INFO";
    case remote_procedure::domain_lookup_by_name:
        return "DOMAIN_LOOKUP_BY_NAME";
    case remote_procedure::domain_undefine:
        return "DOMAIN_UNDEFINE";
    case remote_procedure::connect_get_hostname:
        return "CONNECT_GET_HOSTNAME";
    case remote_procedure::auth_list:
        return "AUTH_LIST";
    case remote_procedure::storage_pool_lookup_by_name:
        return "STORAGE_POOL_LOOKUP_BY_NAME";
    case remote_procedure::storage_vol_create_xml:
        return "STORAGE_VOL_CREATE_XML";
    case remote_procedure::storage_vol_delete:
        return "STORAGE_VOL_DELETE";
    case remote_procedure::storage_vol_lookup_by_name:
        return "STORAGE_VOL_LOOKUP_BY_NAME";
    case remote_procedure::storage_vol_get_xml_desc:
        return "STORAGE_VOL_GET_XML_DESC";
    case remote_procedure::storage_vol_get_path:
        return "STORAGE_VOL_GET_PATH";
    case remote_procedure::domain_open_console:
        return "DOMAIN_OPEN_CONSOLE";
    case remote_procedure::storage_vol_upload:
        return "STORAGE_VOL_UPLOAD";
    case remote_procedure::domain_get_state:
        return "DOMAIN_GET_STATE";
    case remote_procedure::domain_destroy_flags:
        return "DOMAIN_DESTROY_FLAGS";
    case remote_procedure::domain_shutdown_flags:
        return "DOMAIN_SHUTDOWN_FLAGS";
    case remote_procedure::connect_domain_event_callback_register_any:
        return "CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY";
    case remote_procedure::connect_domain_event_callback_deregister_any:
        return "CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY";
    case remote_procedure::domain_event_callback_lifecycle:
        return "DOMAIN_EVENT_CALLBACK_LIFECYCLE";
    }
    return "REMOTE_PROC";
}

std::string proc_label(std::uint32_t program, std::int32_t p) {
    return std::string(procedure_name(program, p)) + " (" + std::to_string(p) + ")";
}

using localvm::detail::deadline_after;
using localvm::detail::ms;
using localvm::detail::scope_exit;
using localvm::detail::throw_if_cancelled;
using localvm::detail::wait_for_wakeup;

template <class T> T decode_or_throw(const std::string& payload, const char* what) {
    std::string problem;
    auto v = decode<T>(payload, problem);
    if (!v)
        throw localvm::error(errc::protocol_error,
                             std::string(what) +
                                 ": the daemon's reply does not decode: " + problem);
    return std::move(*v);
}

} // namespace

call_error::call_error(std::string procedure, remote_error e)
    : localvm::error(errc::libvirt_error, procedure + ": " + describe(e))
    , procedure_(std::move(procedure))
    , remote_(std::move(e)) {}

namespace detail {

struct pending_call {
    asio::steady_timer* timer = nullptr;
    bool done = false;
    std::optional<std::string> value;
    std::optional<remote_error> fail;
    std::string bad_error; // an error payload that did not decode
    error_code closed;
    std::string closed_diagnostic;
    // Runs in the reader as the reply arrives, before anything after it is
    // dispatched (registers an event sink before its first event).
    std::function<void(const std::string&)> on_success;
};

struct closable {
    bool closed = false;
    error_code close_code;
    std::string close_diagnostic;
};

struct event_sink : closable {
    event_sink(asio::any_io_executor ex, std::weak_ptr<client_impl> o)
        : timer(ex)
        , owner(std::move(o)) {}
    std::int32_t callback_id = -1;
    std::size_t capacity = 256;
    std::deque<lifecycle> queue;
    std::uint64_t lost = 0;
    asio::steady_timer timer;
    bool waiting = false;
    std::weak_ptr<client_impl> owner;
};

struct stream_state : closable {
    stream_state(asio::any_io_executor ex, std::weak_ptr<client_impl> o)
        : timer(ex)
        , owner(std::move(o)) {}
    std::uint32_t program = remote_program;
    std::int32_t procedure = 0;
    std::uint32_t serial = 0;
    std::deque<std::string> data;
    std::size_t bytes = 0;
    bool remote_done = false;          // the daemon sent its OK
    std::optional<remote_error> error; // the daemon sent an ERROR
    bool local_done = false;           // we sent OK or ERROR
    asio::steady_timer timer;
    bool waiting = false;
    std::weak_ptr<client_impl> owner;
};

struct client_impl : std::enable_shared_from_this<client_impl> {
    client_impl(transport t, client_options o)
        : ex(t.socket.get_executor())
        , options(o)
        , tr(std::move(t))
        , dec(o.max_message_size)
        , write_signal(ex)
        , ka_timer(ex)
        , ka(o.keepalive, clock_type::now()) {}

    asio::any_io_executor ex;
    client_options options;
    transport tr;
    frame_decoder dec;
    std::string out, writing;
    asio::steady_timer write_signal;
    asio::steady_timer ka_timer;
    keepalive ka;
    std::uint32_t next_serial = 1;
    std::unordered_map<std::uint32_t, pending_call*> pending;
    std::unordered_map<std::uint32_t, std::shared_ptr<stream_state>> streams;
    std::unordered_map<std::int32_t, std::shared_ptr<event_sink>> sinks;
    std::vector<asio::steady_timer*> close_waiters;
    std::vector<asio::steady_timer*> drain_waiters; // stream writers over the queue limit
    bool close_sent = false;
    connection_end end = connection_end::open;
    error_code close_code;
    std::string close_diagnostic;
    std::array<char, 65536> readbuf{};

    void send(const header& h, std::string_view payload) {
        encode_message(out, h, payload);
        write_signal.cancel();
    }

    void close_one(closable& c) const {
        c.closed = true;
        c.close_code = close_code;
        c.close_diagnostic = close_diagnostic;
    }

    void finish(connection_end how, error_code code, std::string diagnostic) {
        if (end != connection_end::open)
            return;
        end = how;
        close_code = code;
        close_diagnostic = "libvirt connection to " + tr.where + " " + std::move(diagnostic);
        if (tr.status) {
            if (auto s = tr.status->text(); !s.empty())
                close_diagnostic += " [" + s + "]";
        }
        error_code ignored;
        tr.socket.shutdown(asio::socket_base::shutdown_both, ignored);
        tr.socket.close(ignored);
        if (tr.ssh)
            tr.ssh->signal(SIGTERM);
        write_signal.cancel();
        ka_timer.cancel();
        for (auto& [serial, call] : pending) {
            call->done = true;
            call->closed = close_code;
            call->closed_diagnostic = close_diagnostic;
            call->timer->cancel();
        }
        pending.clear();
        for (auto& [serial, s] : streams) {
            close_one(*s);
            s->timer.cancel();
        }
        streams.clear();
        for (auto& [id, s] : sinks) {
            close_one(*s);
            s->timer.cancel();
        }
        sinks.clear();
        for (auto* t : close_waiters)
            t->cancel();
        for (auto* t : drain_waiters)
            t->cancel();
    }

    void on_reply(message& m) {
        auto it = pending.find(m.header.serial);
        if (it == pending.end())
            return; // a cancelled or timed-out call's late reply
        auto* call = it->second;
        pending.erase(it);
        if (m.header.status == message_status::ok) {
            if (call->on_success)
                call->on_success(m.payload);
            call->value = std::move(m.payload);
        } else {
            std::string problem;
            call->fail = decode_error(m.payload, problem);
            if (!call->fail)
                call->bad_error = problem;
        }
        call->done = true;
        call->timer->cancel();
    }

    void on_stream(message& m) {
        auto it = streams.find(m.header.serial);
        if (it == streams.end())
            return; // an aborted stream's late data
        auto& s = *it->second;
        switch (m.header.status) {
        case message_status::proceed:
            s.bytes += m.payload.size();
            s.data.push_back(std::move(m.payload));
            break;
        case message_status::ok:
            s.remote_done = true;
            break;
        case message_status::error: {
            std::string problem;
            auto e = decode_error(m.payload, problem);
            if (!e) {
                e.emplace();
                e->message = "stream error that does not decode: " + problem;
            }
            s.error = std::move(e);
            break;
        }
        }
        if (s.remote_done || s.error)
            streams.erase(it); // its state lives on in the stream object
        s.timer.cancel();
    }

    void on_event(message& m) {
        if (m.header.procedure !=
            static_cast<std::int32_t>(remote_procedure::domain_event_callback_lifecycle))
            return; // an event nobody here registered for
        std::string problem;
        auto msg = decode<lifecycle_msg>(m.payload, problem);
        if (!msg) {
            finish(connection_end::protocol_error, errc::protocol_error,
                   "closed: a lifecycle event does not decode: " + problem);
            return;
        }
        auto it = sinks.find(msg->callback_id);
        if (it == sinks.end())
            return;
        auto& s = *it->second;
        if (s.queue.size() >= s.capacity) {
            ++s.lost;
            return;
        }
        s.queue.push_back(
            {std::move(msg->dom), static_cast<lifecycle_event>(msg->event), msg->detail});
        s.timer.cancel();
    }

    void dispatch(message& m) {
        ka.on_received(clock_type::now());
        const auto& h = m.header;
        if (h.program == keepalive_program) {
            if (h.procedure == keepalive_ping) {
                header pong = h;
                pong.procedure = keepalive_pong;
                send(pong, "");
            }
            return;
        }
        if (h.program != remote_program && h.program != qemu_program)
            return;
        switch (h.type) {
        case message_type::reply:
            on_reply(m);
            break;
        case message_type::stream:
            on_stream(m);
            break;
        case message_type::message:
            on_event(m);
            break;
        default:
            break; // calls and fd-passing types are not for a client
        }
    }

    static asio::awaitable<void> read_loop(std::shared_ptr<client_impl> self) {
        for (;;) {
            error_code ec;
            auto n = co_await self->tr.socket.async_read_some(
                asio::buffer(self->readbuf), asio::redirect_error(asio::use_awaitable, ec));
            if (self->end != connection_end::open)
                co_return;
            if (ec == asio::error::eof) {
                self->finish(self->close_sent ? connection_end::clean : connection_end::unexpected,
                             errc::libvirt_closed, "ended (EOF)");
                co_return;
            }
            if (ec) {
                self->finish(connection_end::unexpected, errc::libvirt_closed,
                             "failed: " + ec.message());
                co_return;
            }
            std::string_view in(self->readbuf.data(), n);
            while (!in.empty() && self->end == connection_end::open) {
                auto m = self->dec.consume(in, ec);
                if (ec) {
                    self->finish(connection_end::protocol_error, ec,
                                 "closed: the daemon sent a bad message: " + self->dec.problem());
                    co_return;
                }
                if (m)
                    self->dispatch(*m);
            }
        }
    }

    static asio::awaitable<void> write_loop(std::shared_ptr<client_impl> self) {
        for (;;) {
            while (self->out.empty()) {
                if (self->end != connection_end::open)
                    co_return;
                co_await wait_for_wakeup(self->write_signal, clock_type::time_point::max());
            }
            if (self->end != connection_end::open)
                co_return;
            std::swap(self->out, self->writing);
            error_code ec;
            co_await asio::async_write(self->tr.socket, asio::buffer(self->writing),
                                       asio::redirect_error(asio::use_awaitable, ec));
            self->writing.clear();
            for (auto* t : self->drain_waiters)
                t->cancel();
            if (ec) {
                self->finish(connection_end::unexpected, errc::libvirt_closed,
                             "failed while writing: " + ec.message());
                co_return;
            }
        }
    }

    static asio::awaitable<void> keepalive_loop(std::shared_ptr<client_impl> self) {
        while (self->end == connection_end::open) {
            auto a = self->ka.next(clock_type::now());
            switch (a.verdict) {
            case keepalive::verdict::disabled:
                co_return;
            case keepalive::verdict::dead:
                self->finish(connection_end::keepalive, errc::timeout,
                             "closed: no answer to " +
                                 std::to_string(self->options.keepalive.count) +
                                 " keepalive PINGs");
                co_return;
            case keepalive::verdict::send_ping: {
                header ping;
                ping.program = keepalive_program;
                ping.version = keepalive_version;
                ping.procedure = keepalive_ping;
                ping.type = message_type::message;
                self->send(ping, "");
                break;
            }
            case keepalive::verdict::wait:
                co_await wait_for_wakeup(self->ka_timer, a.at);
                break;
            }
        }
    }

    // The loops run detached from any caller; should one fail, the failure
    // ends the connection and reaches every waiter instead of vanishing.
    void spawn(asio::awaitable<void> (*loop)(std::shared_ptr<client_impl>)) {
        std::weak_ptr<client_impl> weak = shared_from_this();
        asio::co_spawn(ex, loop(shared_from_this()), [weak](std::exception_ptr e) {
            auto self = weak.lock();
            if (!e || !self)
                return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                self->finish(connection_end::unexpected, errc::libvirt_closed,
                             std::string("closed: internal failure: ") + x.what());
            } catch (...) {
                self->finish(connection_end::unexpected, errc::libvirt_closed,
                             "closed: internal failure");
            }
        });
    }

    [[noreturn]] void throw_closed(const std::string& what) const {
        throw localvm::error(close_code, what + ": " + close_diagnostic);
    }

    std::uint32_t take_serial() { return next_serial++; }

    static asio::awaitable<std::string>
    call(std::shared_ptr<client_impl> self, std::uint32_t program, std::int32_t procedure,
         std::string args, call_options options,
         std::function<void(const std::string&)> on_success = {},
         std::shared_ptr<stream_state> opens = {}) {
        const std::string label = proc_label(program, procedure);
        if (self->end != connection_end::open)
            self->throw_closed(label);
        asio::steady_timer timer(self->ex);
        pending_call c;
        c.timer = &timer;
        c.on_success = std::move(on_success);
        const auto serial = self->take_serial();
        header h;
        h.program = program;
        h.version = program == qemu_program ? qemu_version : remote_version;
        h.procedure = procedure;
        h.serial = serial;
        self->pending.emplace(serial, &c);
        if (opens) { // its packets may follow the reply at once
            opens->program = program;
            opens->procedure = procedure;
            opens->serial = serial;
            self->streams.emplace(serial, opens);
        }
        bool opened = false;
        scope_exit forget{[&] {
            self->pending.erase(serial);
            if (opens && !opened)
                self->streams.erase(serial);
        }};
        self->send(h, args);
        auto deadline = deadline_after(options.timeout);
        while (!c.done) {
            bool expired = co_await wait_for_wakeup(timer, deadline);
            if (c.done)
                break;
            if (expired)
                throw localvm::error(errc::timeout, "libvirt call " + label + ": no reply within " +
                                                        ms(options.timeout));
            co_await throw_if_cancelled();
        }
        if (c.closed)
            throw localvm::error(c.closed, label + ": " + c.closed_diagnostic);
        if (!c.bad_error.empty())
            throw localvm::error(errc::protocol_error, label + ": " + c.bad_error);
        if (c.fail)
            throw call_error(procedure_name(program, procedure), std::move(*c.fail));
        opened = true;
        co_return std::move(*c.value);
    }

    // Waits on a stream or sink timer for `ready` (checked after each
    // wake-up), the end of the connection, the deadline or cancellation.
    template <class S, class Ready>
    static asio::awaitable<void> wait_on(S& s, Ready ready, clock_type::duration timeout,
                                         const std::string& what) {
        if (s.waiting)
            throw localvm::error(errc::invalid_argument, "another call already waits on " + what);
        auto deadline = deadline_after(timeout);
        while (!ready()) {
            if (s.closed)
                throw localvm::error(s.close_code, what + ": " + s.close_diagnostic);
            s.waiting = true;
            scope_exit idle{[&] {
                s.waiting = false;
            }};
            bool expired = co_await wait_for_wakeup(s.timer, deadline);
            if (ready() || s.closed)
                continue;
            if (expired)
                throw localvm::error(errc::timeout, what + ": nothing within " + ms(timeout));
            co_await throw_if_cancelled();
        }
    }
};

} // namespace detail

// --- lifecycle_events ------------------------------------------------------

lifecycle_events::lifecycle_events(std::shared_ptr<detail::event_sink> s)
    : s_(std::move(s)) {}
lifecycle_events::lifecycle_events(lifecycle_events&&) noexcept = default;
lifecycle_events& lifecycle_events::operator=(lifecycle_events&& o) noexcept {
    if (this != &o) {
        lifecycle_events gone(std::move(*this));
        s_ = std::move(o.s_);
    }
    return *this;
}

lifecycle_events::~lifecycle_events() {
    if (!s_)
        return;
    if (auto owner = s_->owner.lock())
        owner->sinks.erase(s_->callback_id);
    s_->timer.cancel();
}

asio::awaitable<lifecycle> lifecycle_events::next(std::chrono::milliseconds timeout) {
    auto s = s_;
    if (!s)
        throw localvm::error(errc::invalid_argument, "next() on a moved-from lifecycle_events");
    co_await detail::client_impl::wait_on(
        *s, [&] { return !s->queue.empty(); }, timeout, "waiting for a libvirt lifecycle event");
    lifecycle e = std::move(s->queue.front());
    s->queue.pop_front();
    co_return e;
}

std::optional<lifecycle> lifecycle_events::try_next() {
    if (!s_ || s_->queue.empty())
        return std::nullopt;
    lifecycle e = std::move(s_->queue.front());
    s_->queue.pop_front();
    return e;
}

std::uint64_t lifecycle_events::lost() const noexcept {
    return s_ ? s_->lost : 0;
}
std::int32_t lifecycle_events::callback_id() const noexcept {
    return s_ ? s_->callback_id : -1;
}

asio::awaitable<void> lifecycle_events::close() {
    auto s = s_;
    if (!s)
        co_return;
    auto owner = s->owner.lock();
    if (!owner || owner->end != connection_end::open || s->closed)
        co_return;
    owner->sinks.erase(s->callback_id);
    s->closed = true;
    s->close_code = errc::libvirt_closed;
    s->close_diagnostic = "the lifecycle event registration was closed";
    s->timer.cancel();
    std::string args = encode(callback_id_value{s->callback_id});
    co_await detail::client_impl::call(
        owner, remote_program,
        static_cast<std::int32_t>(remote_procedure::connect_domain_event_callback_deregister_any),
        std::move(args), {});
}

// --- stream ------------------------------------------------------------------

stream::stream(std::shared_ptr<detail::stream_state> s)
    : s_(std::move(s)) {}
stream::stream(stream&&) noexcept = default;
stream& stream::operator=(stream&& o) noexcept {
    if (this != &o) {
        stream gone(std::move(*this));
        s_ = std::move(o.s_);
    }
    return *this;
}
stream::~stream() {
    abort();
}

std::size_t stream::buffered() const noexcept {
    return s_ ? s_->bytes : 0;
}

namespace {

[[noreturn]] void throw_stream_error(const detail::stream_state& s) {
    throw call_error(std::string(procedure_name(s.program, s.procedure)) + " stream", *s.error);
}

header stream_header(const detail::stream_state& s, message_status status) {
    header h;
    h.program = s.program;
    h.version = s.program == qemu_program ? qemu_version : remote_version;
    h.procedure = s.procedure;
    h.type = message_type::stream;
    h.serial = s.serial;
    h.status = status;
    return h;
}

} // namespace

asio::awaitable<std::optional<std::string>> stream::read(std::chrono::milliseconds timeout) {
    auto s = s_;
    if (!s)
        throw localvm::error(errc::invalid_argument, "read() on a moved-from libvirt stream");
    co_await detail::client_impl::wait_on(
        *s, [&] { return !s->data.empty() || s->remote_done || s->error.has_value(); }, timeout,
        "reading a libvirt stream");
    if (!s->data.empty()) {
        std::string d = std::move(s->data.front());
        s->data.pop_front();
        s->bytes -= d.size();
        co_return d;
    }
    if (s->error)
        throw_stream_error(*s);
    co_return std::nullopt;
}

asio::awaitable<void> stream::write(std::string data) {
    auto s = s_;
    if (!s || s->local_done)
        throw localvm::error(errc::invalid_argument, "write() on a finished libvirt stream");
    if (s->error)
        throw_stream_error(*s);
    auto owner = s->owner.lock();
    if (s->closed || !owner || owner->end != connection_end::open)
        throw localvm::error(s->closed ? s->close_code : make_error_code(errc::libvirt_closed),
                             "writing a libvirt stream: " +
                                 (s->closed ? s->close_diagnostic : "the connection has ended"));
    const auto h = stream_header(*s, message_status::proceed);
    std::string_view rest(data);
    while (!rest.empty()) {
        auto n = std::min(rest.size(), stream_chunk_size);
        owner->send(h, rest.substr(0, n));
        rest.remove_prefix(n);
    }
    // Backpressure: an upload written piece by piece stays a few MiB ahead
    // of the socket instead of queueing whole.
    asio::steady_timer timer(owner->ex);
    while (owner->end == connection_end::open && owner->out.size() > stream_queue_limit) {
        owner->drain_waiters.push_back(&timer);
        scope_exit unregister{[&] {
            std::erase(owner->drain_waiters, &timer);
        }};
        co_await wait_for_wakeup(timer, clock_type::time_point::max());
        co_await localvm::detail::throw_if_cancelled();
    }
}

asio::awaitable<void> stream::finish(std::chrono::milliseconds timeout) {
    auto s = s_;
    if (!s || s->local_done)
        throw localvm::error(errc::invalid_argument, "finish() on a finished libvirt stream");
    if (auto owner = s->owner.lock(); owner && owner->end == connection_end::open && !s->closed)
        owner->send(stream_header(*s, message_status::ok), "");
    s->local_done = true;
    co_await detail::client_impl::wait_on(
        *s, [&] { return s->remote_done || s->error.has_value(); }, timeout,
        "finishing a libvirt stream");
    if (s->error)
        throw_stream_error(*s);
}

void stream::abort() noexcept {
    auto s = s_;
    if (!s || s->local_done)
        return;
    s->local_done = true;
    if (s->remote_done || s->error || s->closed)
        return;
    if (auto owner = s->owner.lock(); owner && owner->end == connection_end::open) {
        try {
            owner->send(stream_header(*s, message_status::error), "");
        } catch (...) { // bad_alloc: the connection is then no longer trustworthy
            owner->finish(connection_end::local, errc::libvirt_closed, "closed: out of memory");
        }
        owner->streams.erase(s->serial);
    }
    s->closed = true;
    s->close_code = errc::libvirt_closed;
    s->close_diagnostic = "the stream was aborted";
    s->timer.cancel();
}

// --- client ------------------------------------------------------------------

client::client(std::shared_ptr<detail::client_impl> impl)
    : impl_(std::move(impl)) {}
client::client(client&&) noexcept = default;
client& client::operator=(client&& o) noexcept {
    if (this != &o) {
        abort();
        impl_ = std::move(o.impl_);
    }
    return *this;
}
client::~client() {
    abort();
}

void client::abort() noexcept {
    if (impl_)
        impl_->finish(connection_end::local, errc::libvirt_closed, "closed by the client");
}

connection_end client::end() const noexcept {
    return impl_ ? impl_->end : connection_end::local;
}
std::string client::end_diagnostic() const {
    return impl_ ? impl_->close_diagnostic : std::string();
}
std::size_t client::in_flight() const noexcept {
    return impl_ ? impl_->pending.size() : 0;
}

namespace {

// Over ssh, the reason a connection failed is on ssh's stderr, which may be
// read a moment after the socket's EOF: wait (up to 2 s) for ssh to exit.
asio::awaitable<std::string> ssh_reason(const detail::client_impl& impl) {
    if (!impl.tr.status)
        co_return std::string();
    asio::steady_timer t(co_await asio::this_coro::executor);
    for (int i = 0; i < 40 && !impl.tr.status->exited; ++i) {
        t.expires_after(std::chrono::milliseconds(50));
        co_await t.async_wait(asio::use_awaitable);
    }
    co_return impl.tr.status->text();
}

asio::awaitable<void> authenticate_and_open(std::shared_ptr<detail::client_impl> impl,
                                            const uri& u) {
    auto auth = decode_or_throw<auth_list_ret>(
        co_await detail::client_impl::call(
            impl, remote_program, static_cast<std::int32_t>(remote_procedure::auth_list), "", {}),
        "AUTH_LIST");
    bool none = false;
    for (auto a : auth.types)
        none = none || a == 0;
    if (!none) {
        std::string offered;
        for (auto a : auth.types)
            offered += (offered.empty() ? "" : ", ") + std::string(a == 1   ? "sasl"
                                                                   : a == 2 ? "polkit"
                                                                            : std::to_string(a));
        throw localvm::error(errc::unsupported, "libvirt at " + impl->tr.where +
                                                    " demands authentication (" + offered +
                                                    "); localvm supports only auth none");
    }
    connect_open_args open;
    open.name = u.name();
    co_await detail::client_impl::call(impl, remote_program,
                                       static_cast<std::int32_t>(remote_procedure::connect_open),
                                       encode(open), {});
}

asio::awaitable<std::shared_ptr<detail::client_impl>> handshake(uri u, client_options options) {
    auto secs = std::chrono::ceil<std::chrono::seconds>(options.connect_timeout);
    auto t = co_await detail::open_transport(u, secs);
    auto impl = std::make_shared<detail::client_impl>(std::move(t), options);
    std::exception_ptr failed;
    try {
        impl->spawn(&detail::client_impl::read_loop);
        impl->spawn(&detail::client_impl::write_loop);
        impl->spawn(&detail::client_impl::keepalive_loop);
        co_await authenticate_and_open(impl, u);
    } catch (...) {
        failed = std::current_exception();
    }
    if (!failed)
        co_return impl;
    const bool ended = impl->end != connection_end::open;
    impl->finish(connection_end::local, errc::libvirt_closed, "closed: connecting failed");
    if (ended && impl->tr.status) {
        std::optional<localvm::error> closed;
        try {
            std::rethrow_exception(failed);
        } catch (const localvm::error& e) {
            if (e.code() == errc::libvirt_closed)
                closed = e;
        } catch (...) {
        }
        if (closed) {
            auto why = co_await ssh_reason(*impl);
            throw localvm::error(closed->code(),
                                 closed->diagnostic() + (why.empty() ? "" : " [" + why + "]"));
        }
    }
    std::rethrow_exception(failed);
}

} // namespace

asio::awaitable<client> client::connect(std::string text, client_options options) {
    std::string problem;
    auto u = parse_uri(text, problem);
    if (!u)
        throw localvm::error(errc::invalid_argument, problem);
    std::shared_ptr<detail::client_impl> impl;
    auto attempt = [](std::shared_ptr<detail::client_impl>& out, uri u,
                      client_options o) -> asio::awaitable<void> {
        out = co_await handshake(std::move(u), o);
    };
    asio::steady_timer deadline(co_await asio::this_coro::executor, options.connect_timeout);
    std::variant<std::monostate, std::monostate> outcome;
    outcome = co_await localvm::detail::race(attempt(impl, *u, options),
                                             deadline.async_wait(asio::use_awaitable));
    if (outcome.index() == 1) {
        if (impl)
            impl->finish(connection_end::local, errc::timeout, "timed out while connecting");
        throw localvm::error(errc::timeout, "connecting to libvirt at " + text +
                                                ": no CONNECT_OPEN within " +
                                                ms(options.connect_timeout));
    }
    co_return client(std::move(impl));
}

asio::awaitable<std::string> client::call(std::uint32_t program, std::int32_t procedure,
                                          std::string args, call_options options) {
    if (!impl_)
        throw localvm::error(errc::libvirt_closed, "call on a moved-from libvirt client");
    return detail::client_impl::call(impl_, program, procedure, std::move(args), options);
}

namespace {
std::int32_t rp(remote_procedure p) {
    return static_cast<std::int32_t>(p);
}
} // namespace

asio::awaitable<std::uint64_t> client::hypervisor_version() {
    auto r = co_await call(remote_program, rp(remote_procedure::connect_get_version), "");
    co_return decode_or_throw<connect_get_version_ret>(r, "CONNECT_GET_VERSION").hv_ver;
}

asio::awaitable<std::string> client::hostname() {
    auto r = co_await call(remote_program, rp(remote_procedure::connect_get_hostname), "");
    co_return decode_or_throw<string_value>(r, "CONNECT_GET_HOSTNAME").value;
}

asio::awaitable<node_get_info_ret> client::node_info() {
    auto r = co_await call(remote_program, rp(remote_procedure::node_get_info), "");
    co_return decode_or_throw<node_get_info_ret>(r, "NODE_GET_INFO");
}

asio::awaitable<std::uint64_t> client::node_free_memory() {
    auto r = co_await call(remote_program, rp(remote_procedure::node_get_free_memory), "");
    co_return decode_or_throw<node_get_free_memory_ret>(r, "NODE_GET_FREE_MEMORY").free_bytes;
}

asio::awaitable<std::string> client::capabilities() {
    auto r = co_await call(remote_program, rp(remote_procedure::connect_get_capabilities), "");
    co_return decode_or_throw<string_value>(r, "CONNECT_GET_CAPABILITIES").value;
}

asio::awaitable<std::vector<std::int32_t>> client::auth_list() {
    auto r = co_await call(remote_program, rp(remote_procedure::auth_list), "");
    co_return decode_or_throw<auth_list_ret>(r, "AUTH_LIST").types;
}

asio::awaitable<domain_ref> client::define_xml(std::string xml) {
    std::string args = encode(string_value{std::move(xml)});
    auto r =
        co_await call(remote_program, rp(remote_procedure::domain_define_xml), std::move(args));
    co_return decode_or_throw<domain_value>(r, "DOMAIN_DEFINE_XML").dom;
}

asio::awaitable<void> client::undefine(domain_ref dom) {
    std::string args = encode(domain_value{dom});
    co_await call(remote_program, rp(remote_procedure::domain_undefine), std::move(args));
}

asio::awaitable<void> client::create(domain_ref dom) {
    std::string args = encode(domain_value{dom});
    co_await call(remote_program, rp(remote_procedure::domain_create), std::move(args));
}

asio::awaitable<domain_ref> client::create_xml(std::string xml, std::uint32_t flags) {
    std::string args = encode(domain_create_xml_args{std::move(xml), flags});
    auto r =
        co_await call(remote_program, rp(remote_procedure::domain_create_xml), std::move(args));
    co_return decode_or_throw<domain_value>(r, "DOMAIN_CREATE_XML").dom;
}

asio::awaitable<domain_ref> client::lookup_domain(std::string name) {
    std::string args = encode(string_value{std::move(name)});
    auto r =
        co_await call(remote_program, rp(remote_procedure::domain_lookup_by_name), std::move(args));
    co_return decode_or_throw<domain_value>(r, "DOMAIN_LOOKUP_BY_NAME").dom;
}

asio::awaitable<std::pair<domain_state, std::int32_t>>
client::domain_get_state(domain_ref dom, call_options options) {
    std::string args = encode(domain_flags_args{std::move(dom), 0});
    auto r = co_await call(remote_program, rp(remote_procedure::domain_get_state), std::move(args),
                           options);
    auto v = decode_or_throw<domain_get_state_ret>(r, "DOMAIN_GET_STATE");
    co_return std::pair{static_cast<domain_state>(v.state), v.reason};
}

asio::awaitable<domain_info> client::domain_get_info(domain_ref dom) {
    std::string args = encode(domain_value{std::move(dom)});
    auto r = co_await call(remote_program, rp(remote_procedure::domain_get_info), std::move(args));
    auto v = decode_or_throw<domain_get_info_ret>(r, "DOMAIN_GET_INFO");
    co_return domain_info{static_cast<domain_state>(v.state), v.max_mem, v.memory, v.nr_virt_cpu,
                          v.cpu_time};
}

asio::awaitable<void> client::shutdown(domain_ref dom, std::uint32_t flags) {
    std::string args = encode(domain_flags_args{std::move(dom), flags});
    co_await call(remote_program, rp(remote_procedure::domain_shutdown_flags), std::move(args));
}

asio::awaitable<void> client::destroy(domain_ref dom, std::uint32_t flags) {
    std::string args = encode(domain_flags_args{std::move(dom), flags});
    co_await call(remote_program, rp(remote_procedure::domain_destroy_flags), std::move(args));
}

asio::awaitable<std::string> client::xml_desc(domain_ref dom, std::uint32_t flags) {
    std::string args = encode(domain_flags_args{std::move(dom), flags});
    auto r =
        co_await call(remote_program, rp(remote_procedure::domain_get_xml_desc), std::move(args));
    co_return decode_or_throw<string_value>(r, "DOMAIN_GET_XML_DESC").value;
}

asio::awaitable<std::string> client::monitor_command(domain_ref dom, std::string cmd,
                                                     std::uint32_t flags) {
    std::string args = encode(monitor_command_args{std::move(dom), std::move(cmd), flags});
    auto r = co_await call(qemu_program,
                           static_cast<std::int32_t>(qemu_procedure::domain_monitor_command),
                           std::move(args));
    co_return decode_or_throw<string_value>(r, "QEMU_DOMAIN_MONITOR_COMMAND").value;
}

asio::awaitable<pool_ref> client::lookup_pool(std::string name) {
    std::string args = encode(string_value{std::move(name)});
    auto r = co_await call(remote_program, rp(remote_procedure::storage_pool_lookup_by_name),
                           std::move(args));
    co_return decode_or_throw<pool_value>(r, "STORAGE_POOL_LOOKUP_BY_NAME").pool;
}

asio::awaitable<vol_ref> client::create_volume(pool_ref pool, std::string xml,
                                               std::uint32_t flags) {
    std::string args = encode(vol_create_xml_args{std::move(pool), std::move(xml), flags});
    auto r = co_await call(remote_program, rp(remote_procedure::storage_vol_create_xml),
                           std::move(args));
    co_return decode_or_throw<vol_value>(r, "STORAGE_VOL_CREATE_XML").vol;
}

asio::awaitable<vol_ref> client::lookup_volume(pool_ref pool, std::string name) {
    std::string args = encode(vol_lookup_by_name_args{std::move(pool), std::move(name)});
    auto r = co_await call(remote_program, rp(remote_procedure::storage_vol_lookup_by_name),
                           std::move(args));
    co_return decode_or_throw<vol_value>(r, "STORAGE_VOL_LOOKUP_BY_NAME").vol;
}

asio::awaitable<std::string> client::volume_path(vol_ref vol) {
    std::string args = encode(vol_value{std::move(vol)});
    auto r =
        co_await call(remote_program, rp(remote_procedure::storage_vol_get_path), std::move(args));
    co_return decode_or_throw<string_value>(r, "STORAGE_VOL_GET_PATH").value;
}

asio::awaitable<std::string> client::volume_xml(vol_ref vol, std::uint32_t flags) {
    std::string args = encode(vol_flags_args{std::move(vol), flags});
    auto r = co_await call(remote_program, rp(remote_procedure::storage_vol_get_xml_desc),
                           std::move(args));
    co_return decode_or_throw<string_value>(r, "STORAGE_VOL_GET_XML_DESC").value;
}

asio::awaitable<void> client::delete_volume(vol_ref vol, std::uint32_t flags) {
    std::string args = encode(vol_flags_args{std::move(vol), flags});
    co_await call(remote_program, rp(remote_procedure::storage_vol_delete), std::move(args));
}

asio::awaitable<stream> client::open_upload(vol_ref vol, std::uint64_t offset,
                                            std::uint64_t length) {
    if (!impl_)
        throw localvm::error(errc::libvirt_closed, "open_upload on a moved-from libvirt client");
    auto s = std::make_shared<detail::stream_state>(impl_->ex, impl_);
    std::string args = encode(vol_upload_args{std::move(vol), offset, length, 0});
    co_await detail::client_impl::call(impl_, remote_program,
                                       rp(remote_procedure::storage_vol_upload), std::move(args),
                                       {}, {}, s);
    co_return stream(std::move(s));
}

asio::awaitable<void> client::upload(vol_ref vol, std::string data, std::uint64_t offset) {
    auto s = co_await open_upload(std::move(vol), offset, data.size());
    co_await s.write(std::move(data));
    co_await s.finish();
}

asio::awaitable<stream> client::open_console(domain_ref dom, std::optional<std::string> dev_name,
                                             std::uint32_t flags) {
    if (!impl_)
        throw localvm::error(errc::libvirt_closed, "open_console on a moved-from libvirt client");
    auto s = std::make_shared<detail::stream_state>(impl_->ex, impl_);
    std::string args = encode(domain_open_console_args{std::move(dom), std::move(dev_name), flags});
    co_await detail::client_impl::call(impl_, remote_program,
                                       rp(remote_procedure::domain_open_console), std::move(args),
                                       {}, {}, s);
    co_return stream(std::move(s));
}

asio::awaitable<lifecycle_events> client::subscribe_lifecycle(std::optional<domain_ref> dom) {
    if (!impl_)
        throw localvm::error(errc::libvirt_closed, "subscribe on a moved-from libvirt client");
    auto sink = std::make_shared<detail::event_sink>(impl_->ex, impl_);
    sink->capacity = impl_->options.event_buffer;
    std::weak_ptr<detail::client_impl> weak = impl_;
    auto install = [weak, sink](const std::string& payload) {
        std::string problem;
        auto v = decode<callback_id_value>(payload, problem);
        auto self = weak.lock();
        if (!v || !self)
            return; // the caller reports the bad payload
        sink->callback_id = v->callback_id;
        self->sinks[v->callback_id] = sink;
    };
    std::string args = encode(event_register_any_args{0, std::move(dom)});
    auto r = co_await detail::client_impl::call(
        impl_, remote_program, rp(remote_procedure::connect_domain_event_callback_register_any),
        std::move(args), {}, install);
    decode_or_throw<callback_id_value>(r, "CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY");
    co_return lifecycle_events(std::move(sink));
}

asio::awaitable<void> client::close() {
    auto impl = impl_;
    if (!impl || impl->end != connection_end::open)
        co_return;
    std::exception_ptr failed;
    try {
        impl->close_sent = true;
        co_await call(remote_program, rp(remote_procedure::connect_close), "");
    } catch (const localvm::error& e) {
        // The daemon ends the connection once it has answered; a proxy in
        // between can lose that answer (virt-ssh-helper, in libvirt 9.0 as
        // upstream, quits on its socket's EOF with what it read unwritten).
        // An EOF instead of the reply is the end asked for.
        if (!(e.code() == errc::libvirt_closed && impl->end == connection_end::clean))
            failed = std::current_exception();
    } catch (...) {
        failed = std::current_exception();
    }
    impl->finish(connection_end::clean, errc::libvirt_closed, "closed (CONNECT_CLOSE)");
    if (failed)
        std::rethrow_exception(failed);
}

asio::awaitable<connection_end> client::wait_closed(std::chrono::milliseconds timeout) {
    auto impl = impl_;
    if (!impl)
        co_return connection_end::local;
    auto deadline = deadline_after(timeout);
    asio::steady_timer timer(impl->ex);
    while (impl->end == connection_end::open) {
        impl->close_waiters.push_back(&timer);
        scope_exit unregister{[&] {
            std::erase(impl->close_waiters, &timer);
        }};
        bool expired = co_await wait_for_wakeup(timer, deadline);
        if (impl->end != connection_end::open)
            break;
        if (expired)
            throw localvm::error(errc::timeout, "libvirt connection to " + impl->tr.where +
                                                    " did not end within " + ms(timeout));
        co_await throw_if_cancelled();
    }
    co_return impl->end;
}

} // namespace localvm::libvirt
