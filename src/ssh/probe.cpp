#include <localvm/error.hpp>
#include <localvm/ssh/probe.hpp>

#include "probe_machine.hpp"
#include "race.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <variant>

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

// The probe loop: drives the state machine with one socket and one timer.
// Each connect/read is raced against the timer (detail::race: whichever
// completes first cancels the other).
asio::awaitable<std::string> probe_loop(std::string host, std::uint16_t port, probe_options opts) {
    auto ex = co_await asio::this_coro::executor;
    const std::string endpoint_name = host + ":" + std::to_string(port);
    if (port == 0)
        throw_error(errc::invalid_argument, "SSH probe of " + endpoint_name + ": port 0");
    const tcp::endpoint ep = co_await resolve(host, port);

    detail::probe_machine machine(endpoint_name, opts);
    tcp::socket sock(ex);
    asio::steady_timer timer(ex);
    std::array<char, 512> buf;
    auto now = [] { return detail::probe_clock::now(); };
    auto close = [&] {
        error_code ignored;
        sock.close(ignored);
    };

    auto action = machine.resume({probe_event_kind::start, {}, {}}, now());
    for (;;) {
        switch (action.kind) {
        case probe_action_kind::connect: {
            close();
            timer.expires_after(action.timeout);
            error_code cec, tec;
            auto r = co_await localvm::detail::race(
                sock.async_connect(ep, asio::redirect_error(asio::use_awaitable, cec)),
                timer.async_wait(asio::redirect_error(asio::use_awaitable, tec)));
            if (r.index() == 0) {
                if (cec == asio::error::operation_aborted)
                    throw_aborted();
                action = cec ? machine.resume({probe_event_kind::connect_failed, {}, cec.message()},
                                              now())
                             : machine.resume({probe_event_kind::connected, {}, {}}, now());
            } else {
                if (tec == asio::error::operation_aborted)
                    throw_aborted();
                action = machine.resume({probe_event_kind::io_timeout, {}, {}}, now());
            }
            break;
        }
        case probe_action_kind::read: {
            timer.expires_after(action.timeout);
            error_code rec, tec;
            auto r = co_await localvm::detail::race(
                sock.async_read_some(asio::buffer(buf),
                                     asio::redirect_error(asio::use_awaitable, rec)),
                timer.async_wait(asio::redirect_error(asio::use_awaitable, tec)));
            if (r.index() == 0) {
                const std::size_t n = std::get<0>(r);
                if (rec == asio::error::operation_aborted)
                    throw_aborted();
                if (n > 0)
                    action = machine.resume(
                        {probe_event_kind::data, std::string_view(buf.data(), n), {}}, now());
                else if (rec == asio::error::eof)
                    action = machine.resume({probe_event_kind::closed, {}, {}}, now());
                else
                    action = machine.resume({probe_event_kind::closed, {}, rec.message()}, now());
            } else {
                if (tec == asio::error::operation_aborted)
                    throw_aborted();
                action = machine.resume({probe_event_kind::io_timeout, {}, {}}, now());
            }
            break;
        }
        case probe_action_kind::wait: {
            close();
            timer.expires_after(action.timeout);
            auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec)
                throw_aborted();
            action = machine.resume({probe_event_kind::waited, {}, {}}, now());
            break;
        }
        case probe_action_kind::done:
            close();
            co_return machine.banner();
        case probe_action_kind::fail:
            close();
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
