#include <localvm/error.hpp>
#include <localvm/ssh/probe.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <deque>
#include <map>
#include <memory>
#include <variant>

#include "probe_machine.hpp"
#include "race.hpp"

namespace localvm::ssh {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using detail::probe_action_kind;
using detail::probe_event;
using detail::probe_event_kind;

namespace {

[[noreturn]] void throw_aborted() {
    throw boost::system::system_error(asio::error::operation_aborted);
}

asio::awaitable<tcp::endpoint> resolve(const std::string& host, std::uint16_t port) {
    error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (!ec)
        co_return tcp::endpoint(addr, port);
    tcp::resolver resolver(co_await asio::this_coro::executor);
    auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port),
                                                          asio::as_tuple(asio::use_awaitable));
    if (rec == asio::error::operation_aborted)
        throw_aborted();
    if (rec || results.empty())
        throw_error(errc::invalid_argument,
                    "SSH probe: cannot resolve host '" + host + "': " + rec.message());
    co_return results.begin()->endpoint();
}

// The driver: carries out the machine's actions. Connects and reads are
// started with plain completion handlers that queue their outcome and wake
// the loop; the loop feeds queued completions to the machine one at a time
// and otherwise waits on one timer until the machine's next deadline. The
// state lives in a shared_ptr held by every handler, so a handler that runs
// after the loop ended (its connection closed) finds it alive and is dropped.
struct probe_io {
    struct connection {
        explicit connection(asio::any_io_executor ex)
            : sock(ex) {}
        tcp::socket sock;
        std::array<char, 512> buf;
    };
    struct completion {
        probe_event_kind kind;
        std::uint32_t id;
        std::size_t bytes;
        std::string text;
    };

    explicit probe_io(asio::any_io_executor ex)
        : wake(ex) {}
    ~probe_io() { close_all(); }

    void post(completion c) {
        done.push_back(std::move(c));
        wake.cancel();
    }
    void close_all() {
        for (auto& [id, c] : open) {
            error_code ignored;
            c->sock.close(ignored);
        }
        open.clear();
    }

    std::map<std::uint32_t, std::unique_ptr<connection>> open;
    std::deque<completion> done;
    asio::steady_timer wake;
};

asio::awaitable<std::string> probe_loop(std::string host, std::uint16_t port, probe_options opts) {
    auto ex = co_await asio::this_coro::executor;
    const std::string endpoint_name = host + ":" + std::to_string(port);
    if (port == 0)
        throw_error(errc::invalid_argument, "SSH probe of " + endpoint_name + ": port 0");
    const tcp::endpoint ep = co_await resolve(host, port);

    detail::probe_machine machine(endpoint_name, opts);
    auto io = std::make_shared<probe_io>(ex);
    // Every connection is closed on the way out, whatever the way.
    struct closer {
        probe_io& io;
        ~closer() { io.close_all(); }
    } closing{*io};
    auto now = [] {
        return detail::probe_clock::now();
    };
    const probe_event issued{probe_event_kind::issued, 0, {}, {}};

    auto action = machine.resume({probe_event_kind::start, 0, {}, {}}, now());
    for (;;) {
        switch (action.kind) {
        case probe_action_kind::connect: {
            auto& c = *io->open.emplace(action.id, std::make_unique<probe_io::connection>(ex))
                           .first->second;
            c.sock.async_connect(ep, [io, id = action.id](error_code ec) {
                if (ec == asio::error::operation_aborted)
                    return; // closed by the loop
                io->post({ec ? probe_event_kind::connect_failed : probe_event_kind::connected, id,
                          0, ec ? ec.message() : std::string()});
            });
            action = machine.resume(issued, now());
            break;
        }
        case probe_action_kind::read: {
            auto& c = *io->open.at(action.id);
            c.sock.async_read_some(
                asio::buffer(c.buf), [io, id = action.id](error_code ec, std::size_t n) {
                    if (ec == asio::error::operation_aborted)
                        return;
                    if (n > 0)
                        io->post({probe_event_kind::data, id, n, {}});
                    else
                        io->post({probe_event_kind::closed, id, 0,
                                  ec == asio::error::eof ? std::string() : ec.message()});
                });
            action = machine.resume(issued, now());
            break;
        }
        case probe_action_kind::close: {
            if (auto it = io->open.find(action.id); it != io->open.end()) {
                error_code ignored;
                it->second->sock.close(ignored);
                io->open.erase(it);
            }
            action = machine.resume(issued, now());
            break;
        }
        case probe_action_kind::wait: {
            // A cancellation that came with a completion is honoured here.
            auto cs = co_await asio::this_coro::cancellation_state;
            if (cs.cancelled() != asio::cancellation_type::none)
                throw_aborted();
            if (!io->done.empty()) {
                auto c = std::move(io->done.front());
                io->done.pop_front();
                auto it = io->open.find(c.id);
                if (it == io->open.end())
                    break; // its connection was closed since: drop it
                std::string_view data(it->second->buf.data(), c.bytes);
                action = machine.resume({c.kind, c.id, data, c.text}, now());
                break;
            }
            io->wake.expires_at(action.until);
            auto [ec] = co_await io->wake.async_wait(asio::as_tuple(asio::use_awaitable));
            if (!io->done.empty())
                break; // woken by a completion
            if (ec)    // not a completion: cancellation of this call
                throw_aborted();
            action = machine.resume({probe_event_kind::tick, 0, {}, {}}, now());
            break;
        }
        case probe_action_kind::done:
            co_return machine.banner();
        case probe_action_kind::fail:
            throw_error(machine.error(), machine.diagnostic());
        }
    }
}

} // namespace

asio::awaitable<std::string> wait_for_banner(std::string host, std::uint16_t port,
                                             probe_options opts, abort_hook abort) {
    if (!abort)
        co_return co_await probe_loop(std::move(host), port, opts);
    const std::string endpoint_name = host + ":" + std::to_string(port);
    auto outcome = co_await detail::race_abort(probe_loop(std::move(host), port, opts), abort());
    if (outcome.index() == 0)
        co_return std::get<0>(std::move(outcome));
    throw_error(errc::guest_died, "guest died while waiting for SSH on " + endpoint_name + ": " +
                                      std::get<1>(outcome));
}

} // namespace localvm::ssh
