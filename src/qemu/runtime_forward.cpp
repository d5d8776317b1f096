// Forwards added to and removed from a running VM (qemu::manager's
// add_forward and remove_forward): HMP through QMP, then the state file.
#include "hostfwd.hpp"
#include "manager_impl.hpp"
#include "plan.hpp"

#include <localvm/error.hpp>
#include <localvm/qemu/forward.hpp>
#include <localvm/qemu/manager.hpp>
#include <localvm/qmp/client.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <exception>


namespace localvm::qemu {
namespace asio = boost::asio;

namespace {

// One HMP command through QMP within `timeout`; its text answer.
asio::awaitable<std::string> hmp(qmp::client& c, std::string line,
                                 std::chrono::milliseconds timeout) {
    qmp::execute_options eo;
    eo.timeout = timeout;
    co_return co_await c.human_monitor_command(std::move(line), eo);
}

asio::awaitable<std::vector<port_forward>> usernet(qmp::client& c,
                                                   std::chrono::milliseconds timeout) {
    co_return detail::parse_usernet_forwards(co_await hmp(c, "info usernet", timeout));
}

} // namespace

asio::awaitable<port_forward> manager::add_forward(port_forward f) {
    impl& vm = *impl_;
    detail::check_forward(f, "forward");
    const std::string what = "forward " + format_port_forward(f) + " on VM " + vm.opts.name;
    vm.running_pid();
    auto lock = co_await vm.lock();
    auto state = vm.running_state();
    if (f.host_port != 0)
        for (const auto& p : state.ports)
            if (detail::same_listener(p, f))
                throw_error(errc::already_exists,
                            what + ": " + p.host_address + ":" + std::to_string(p.host_port) +
                                " is forwarded already (to guest port " +
                                std::to_string(p.guest_port) + ")");
    const auto timeout = vm.opts.start_timeout;
    auto client = co_await vm.monitor(timeout);
    auto before = co_await usernet(client, timeout);
    // Until the state file lists it, whatever QEMU made is undone on any
    // failure, cancellation included (no co_await in a handler: after it).
    bool sent = false;
    std::exception_ptr failure;
    try {
        sent = true;
        auto refused = detail::hostfwd_add_failure(
            co_await hmp(client, detail::hostfwd_add_command(f), timeout));
        if (!refused.empty()) {
            sent = false; // QEMU made nothing
            throw_error(errc::busy, what + ": QEMU cannot listen on " + f.host_address + ":" +
                                        std::to_string(f.host_port) +
                                        " (the port is in use or not allowed): " + refused);
        }
        auto now = co_await usernet(client, timeout);
        auto made = detail::made_for(detail::new_forwards(before, now), f);
        if (!made)
            throw_error(errc::protocol_error,
                        what + ": QEMU's info usernet does not list the new forward");
        state.ports.push_back(*made);
        vm.write_state(state);
        vm.say("forwarding " + format_port_forward(*made));
        co_return *made;
    } catch (...) {
        failure = std::current_exception();
    }
    if (sent) {
        co_await asio::this_coro::reset_cancellation_state();
        try {
            auto now = co_await usernet(client, timeout);
            for (const auto& x : detail::new_forwards(before, now))
                co_await hmp(client, detail::hostfwd_remove_command(x), timeout);
        } catch (const std::exception& e) {
            vm.say(std::string("cannot undo the forward: ") + e.what());
        }
    }
    std::rethrow_exception(failure);
}

asio::awaitable<void> manager::remove_forward(port_forward f) {
    impl& vm = *impl_;
    if (f.host_port == 0)
        throw_error(errc::invalid_argument,
                    "forward: removing needs the host port (0 names no forward)");
    vm.running_pid();
    auto lock = co_await vm.lock();
    auto state = vm.running_state();
    auto it = std::find_if(state.ports.begin(), state.ports.end(), [&](const port_forward& p) {
        return detail::same_listener(p, f) && (f.guest_port == 0 || p.guest_port == f.guest_port);
    });
    const std::string where = f.host_address + ":" + std::to_string(f.host_port);
    if (it == state.ports.end())
        throw_error(errc::not_found, "VM " + vm.opts.name + " has no forward from " + where +
                                         (f.guest_port ? " to guest port " +
                                                             std::to_string(f.guest_port)
                                                       : std::string()));
    const port_forward gone = *it;
    state.ports.erase(it);
    const auto timeout = vm.opts.start_timeout;
    auto client = co_await vm.monitor(timeout);
    auto reply = co_await hmp(client, detail::hostfwd_remove_command(gone), timeout);
    if (!detail::hostfwd_removed(reply))
        vm.say("QEMU had no forward from " + where + " any more: " + reply);
    std::exception_ptr failure;
    try {
        vm.write_state(state);
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        // The state still lists it: put it back rather than leave them apart.
        co_await asio::this_coro::reset_cancellation_state();
        try {
            co_await hmp(client, detail::hostfwd_add_command(gone), timeout);
        } catch (const std::exception& e) {
            vm.say(std::string("cannot restore the forward: ") + e.what());
        }
        std::rethrow_exception(failure);
    }
    vm.say("removed the forward " + format_port_forward(gone));
}

} // namespace localvm::qemu
