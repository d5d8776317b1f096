// qemu::manager's calls through the guest agent: each connects to the VM's
// agent socket for its duration and delegates to agent_calls.
#include "agent_calls.hpp"
#include "manager_impl.hpp"

#include <localvm/console/drain.hpp>
#include <localvm/error.hpp>
#include <localvm/process/detached.hpp>
#include <localvm/qemu/manager.hpp>

#include <boost/asio/this_coro.hpp>

#include "detail/await.hpp"
#include "detail/race.hpp"

namespace localvm::qemu {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

asio::awaitable<qga::client> manager::agent(milliseconds connect_timeout) {
    impl_->running_pid();
    qga::client_options co;
    co.connect_timeout = connect_timeout;
    co_return co_await qga::client::connect(impl_->files.agent_socket.string(), co);
}

asio::awaitable<exec_result> manager::exec(std::vector<std::string> argv, exec_options opts) {
    auto c = co_await agent();
    co_return co_await detail::agent_exec(c, std::move(argv), std::move(opts));
}

asio::awaitable<void> manager::copy_in(fs::path from, std::string to, copy_options opts) {
    auto c = co_await agent();
    co_await detail::agent_copy_in(c, std::move(from), std::move(to), opts);
}

asio::awaitable<void> manager::copy_out(std::string from, fs::path to, copy_options opts) {
    auto c = co_await agent();
    co_await detail::agent_copy_out(c, std::move(from), std::move(to), opts);
}

asio::awaitable<void> manager::wait_ready(milliseconds timeout, ready_mode mode) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (mode != ready_mode::agent)
        co_await wait_ready(timeout);
    if (mode == ready_mode::ssh)
        co_return;
    const pid_t pid = impl_->running_pid();
    const auto left = localvm::detail::time_left(deadline);
    auto exited = process::wait_exit(pid, no_deadline);
    auto outcome = co_await localvm::detail::race(
        detail::agent_wait_ready(impl_->files.agent_socket.string(), left), std::move(exited));
    if (outcome.index() == 1) {
        co_await console::wait_drained(impl_->files.console_log, milliseconds(2000));
        throw_error(errc::guest_died, "QEMU (pid " + std::to_string(pid) +
                                          ") exited while waiting for the guest agent" +
                                          impl_->console_diagnosis());
    }
    impl_->say("the guest agent answers");
    impl_->stage(boot_stage::agent_ready, {});
}

} // namespace localvm::qemu
