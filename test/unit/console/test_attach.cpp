#define BOOST_TEST_MODULE console_attach
#include <localvm/console/serial.hpp>
#include <localvm/console/wait.hpp>
#include <localvm/error.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstring>
#include <optional>

#include "common.hpp"
#include <fcntl.h>
#include <pty.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

using namespace std::chrono_literals;
using console_test::append;
using console_test::temp_dir;
using localvm::errc;
using localvm::console::attach;
using localvm::console::attach_end;
using localvm::console::attach_options;
namespace asio = boost::asio;
namespace ex = asio::experimental;
using unix_socket = asio::local::stream_protocol::socket;
using unix_acceptor = asio::local::stream_protocol::acceptor;

namespace {

constexpr auto test_deadline = 20s;

// A pseudo-terminal: the library gets the slave, the test types on the master.
struct pty {
    int master = -1;
    int slave = -1;
    pty() {
        if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0)
            throw std::runtime_error("openpty failed");
    }
    ~pty() {
        if (master >= 0)
            ::close(master);
        ::close(slave);
    }
    termios attributes() const {
        termios t{};
        ::tcgetattr(slave, &t);
        return t;
    }
};

bool same(const termios& a, const termios& b) {
    return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
           a.c_lflag == b.c_lflag && std::memcmp(a.c_cc, b.c_cc, sizeof a.c_cc) == 0 &&
           ::cfgetispeed(&a) == ::cfgetispeed(&b) && ::cfgetospeed(&a) == ::cfgetospeed(&b);
}

asio::posix::stream_descriptor descriptor(int fd, const asio::any_io_executor& exec) {
    return asio::posix::stream_descriptor(exec, ::fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

// Reads from `d` into `seen` until it contains `text`.
template <typename Stream>
asio::awaitable<void> read_until(Stream& d, std::string& seen, std::string_view text) {
    while (seen.find(text) == std::string::npos) {
        char buf[512];
        auto n = co_await d.async_read_some(asio::buffer(buf), asio::use_awaitable);
        seen.append(buf, n);
    }
}

// Everything the peer sends until it disconnects.
asio::awaitable<std::string> read_to_eof(unix_socket& s) {
    std::string got;
    for (;;) {
        char buf[512];
        boost::system::error_code ec;
        auto n = co_await s.async_read_some(asio::buffer(buf),
                                            asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::eof)
            co_return got;
        if (ec)
            throw boost::system::system_error(ec);
        got.append(buf, n);
    }
}

asio::awaitable<void> send(unix_socket& s, std::string text) {
    co_await asio::async_write(s, asio::buffer(text), asio::use_awaitable);
}

template <typename Stream> asio::awaitable<void> type(Stream& s, std::string text) {
    co_await asio::async_write(s, asio::buffer(text), asio::use_awaitable);
}

void rethrow_any(std::initializer_list<std::exception_ptr> errors) {
    for (auto& e : errors)
        if (e)
            std::rethrow_exception(e);
}

attach_options on(const pty& p) {
    attach_options o;
    o.input_fd = p.slave;
    o.output_fd = p.slave;
    return o;
}

} // namespace

BOOST_AUTO_TEST_CASE(bridges_both_ways_and_ctrl_bracket_detaches) {
    temp_dir dir;
    auto sock = dir / "console.sock";
    pty p;
    auto before = p.attributes();
    int flags_before = ::fcntl(p.slave, F_GETFL);
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            unix_acceptor acceptor(exec, {sock.string()});
            auto master = descriptor(p.master, exec);
            auto server = [&]() -> asio::awaitable<std::string> {
                auto s = co_await acceptor.async_accept(asio::use_awaitable);
                co_await send(s, "Booting\r\nvm login: ");
                co_return co_await read_to_eof(s);
            };
            auto user = [&]() -> asio::awaitable<void> {
                std::string seen;
                co_await read_until(master, seen, "vm login: ");
                BOOST_TEST(seen == "Booting\r\nvm login: ");
                auto now = p.attributes();
                BOOST_TEST(!(now.c_lflag & (ECHO | ICANON | ISIG)));
                co_await type(master, "root\r");
                // Bytes before Ctrl-] in the same write still go; after it, not.
                co_await type(master, "ls\x1dmore");
            };
            auto [order, attach_ex, end, server_ex, received, user_ex] =
                co_await ex::make_parallel_group(
                    asio::co_spawn(exec, attach(sock, on(p)), asio::deferred),
                    asio::co_spawn(exec, server(), asio::deferred),
                    asio::co_spawn(exec, user(), asio::deferred))
                    .async_wait(ex::wait_for_one_error(), asio::use_awaitable);
            rethrow_any({attach_ex, server_ex, user_ex});
            BOOST_TEST((end == attach_end::detached));
            BOOST_TEST(received == "root\rls"); // the server saw the disconnect
        },
        test_deadline);
    BOOST_TEST(same(p.attributes(), before));
    BOOST_TEST(::fcntl(p.slave, F_GETFL) == flags_before);
}

BOOST_AUTO_TEST_CASE(the_vm_closing_the_socket_ends_attach) {
    temp_dir dir;
    auto sock = dir / "console.sock";
    pty p;
    auto before = p.attributes();
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            unix_acceptor acceptor(exec, {sock.string()});
            auto master = descriptor(p.master, exec);
            auto server = [&]() -> asio::awaitable<void> {
                auto s = co_await acceptor.async_accept(asio::use_awaitable);
                co_await send(s, "reboot: Power down\r\n");
            }; // closes the connection, as QEMU exiting does
            auto opts = on(p);
            opts.hint = localvm::console::attach_hint("web");
            auto [order, attach_ex, end, server_ex] =
                co_await ex::make_parallel_group(
                    asio::co_spawn(exec, attach(sock, opts), asio::deferred),
                    asio::co_spawn(exec, server(), asio::deferred))
                    .async_wait(ex::wait_for_one_error(), asio::use_awaitable);
            rethrow_any({attach_ex, server_ex});
            BOOST_TEST((end == attach_end::vm_closed));
            std::string seen;
            co_await read_until(master, seen, "Power down\r\n");
            BOOST_TEST(seen == "Connected to the serial console of web; Ctrl-] detaches.\r\n"
                               "reboot: Power down\r\n");
        },
        test_deadline);
    BOOST_TEST(same(p.attributes(), before));
}

BOOST_AUTO_TEST_CASE(nothing_listening_is_not_running) {
    temp_dir dir;
    pty p;
    auto before = p.attributes();
    // A stale socket file: bound once, nobody listens (QEMU was killed).
    auto stale = dir / "stale.sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, stale.c_str());
    BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::close(fd);
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            for (auto path : {dir / "missing.sock", stale}) {
                try {
                    co_await attach(path, on(p));
                    BOOST_FAIL("no throw");
                } catch (const localvm::error& e) {
                    BOOST_TEST(e.code() == errc::not_running);
                    BOOST_TEST(e.diagnostic().find(path.string()) != std::string::npos);
                }
            }
            try {
                co_await attach(dir / std::string(200, 'x'), on(p));
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::invalid_argument);
            }
            attach_options bad;
            bad.input_fd = 999;
            try {
                co_await attach(stale, bad);
                BOOST_FAIL("no throw");
            } catch (const localvm::error& e) {
                BOOST_TEST(e.code() == errc::invalid_argument);
            }
        },
        test_deadline);
    BOOST_TEST(same(p.attributes(), before));
}

BOOST_AUTO_TEST_CASE(cancellation_disconnects_and_restores_the_terminal) {
    temp_dir dir;
    auto sock = dir / "console.sock";
    pty p;
    auto before = p.attributes();
    int flags_before = ::fcntl(p.slave, F_GETFL);
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            unix_acceptor acceptor(exec, {sock.string()});
            auto master = descriptor(p.master, exec);
            std::optional<unix_socket> server;
            auto user = [&]() -> asio::awaitable<void> {
                server.emplace(co_await acceptor.async_accept(asio::use_awaitable));
                co_await send(*server, "hi\r\n");
                std::string seen;
                co_await read_until(master, seen, "hi\r\n");
            }; // returning cancels attach
            auto [order, attach_ex, end, user_ex] =
                co_await ex::make_parallel_group(
                    asio::co_spawn(exec, attach(sock, on(p)), asio::deferred),
                    asio::co_spawn(exec, user(), asio::deferred))
                    .async_wait(ex::wait_for_one(), asio::use_awaitable);
            rethrow_any({user_ex});
            BOOST_TEST(order[0] == 1u);
            BOOST_REQUIRE(attach_ex);
            try {
                std::rethrow_exception(attach_ex);
            } catch (const boost::system::system_error& e) {
                BOOST_TEST(e.code() == asio::error::operation_aborted, e.what());
            }
            BOOST_TEST(co_await read_to_eof(*server) == "");
        },
        test_deadline);
    BOOST_TEST(same(p.attributes(), before));
    BOOST_TEST(::fcntl(p.slave, F_GETFL) == flags_before);
}

BOOST_AUTO_TEST_CASE(input_from_a_pipe_until_its_end) {
    temp_dir dir;
    auto sock = dir / "console.sock";
    int pipe_fds[2];
    BOOST_REQUIRE(::pipe(pipe_fds) == 0);
    int flags_before = ::fcntl(pipe_fds[0], F_GETFL);
    int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC); // not pollable: written directly
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            unix_acceptor acceptor(exec, {sock.string()});
            auto server = [&]() -> asio::awaitable<std::string> {
                auto s = co_await acceptor.async_accept(asio::use_awaitable);
                co_await send(s, "output nobody reads\r\n");
                co_return co_await read_to_eof(s);
            };
            BOOST_REQUIRE(::write(pipe_fds[1], "echo hi\n", 8) == 8);
            ::close(pipe_fds[1]);
            attach_options opts;
            opts.input_fd = pipe_fds[0];
            opts.output_fd = devnull;
            auto [order, attach_ex, end, server_ex, received] =
                co_await ex::make_parallel_group(
                    asio::co_spawn(exec, attach(sock, opts), asio::deferred),
                    asio::co_spawn(exec, server(), asio::deferred))
                    .async_wait(ex::wait_for_one_error(), asio::use_awaitable);
            rethrow_any({attach_ex, server_ex});
            BOOST_TEST((end == attach_end::input_closed));
            BOOST_TEST(received == "echo hi\n");
        },
        test_deadline);
    BOOST_TEST(::fcntl(pipe_fds[0], F_GETFL) == flags_before);
    ::close(pipe_fds[0]);
    ::close(devnull);
}

BOOST_AUTO_TEST_CASE(a_terminal_hangup_ends_attach) {
    temp_dir dir;
    auto sock = dir / "console.sock";
    pty p;
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            unix_acceptor acceptor(exec, {sock.string()});
            auto server = [&]() -> asio::awaitable<void> {
                auto s = co_await acceptor.async_accept(asio::use_awaitable);
                ::close(p.master); // the terminal window closes
                p.master = -1;
                co_await read_to_eof(s);
            };
            auto [order, attach_ex, end, server_ex] =
                co_await ex::make_parallel_group(
                    asio::co_spawn(exec, attach(sock, on(p)), asio::deferred),
                    asio::co_spawn(exec, server(), asio::deferred))
                    .async_wait(ex::wait_for_one_error(), asio::use_awaitable);
            rethrow_any({attach_ex, server_ex});
            BOOST_TEST((end == attach_end::input_closed));
        },
        test_deadline);
}

// The backend's situation: QEMU writes console output to the socket and to
// the log file; a user is attached while two programs wait for text.
BOOST_AUTO_TEST_CASE(waiters_and_an_attached_user_at_the_same_time) {
    temp_dir dir;
    auto sock = dir / "console.sock";
    auto log = dir / "console.log";
    pty p;
    auto before = p.attributes();
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            auto exec = co_await asio::this_coro::executor;
            unix_acceptor acceptor(exec, {sock.string()});
            auto master = descriptor(p.master, exec);
            auto qemu = [&]() -> asio::awaitable<std::string> {
                auto s = co_await acceptor.async_accept(asio::use_awaitable);
                for (std::string piece : {"Booting Linux\r\n", "Debian GNU/Linux 12 vm ttyS0\r\n",
                                          "\r\nvm ", "login: "}) {
                    append(log, piece);
                    co_await send(s, piece);
                }
                co_return co_await read_to_eof(s);
            };
            auto user = [&]() -> asio::awaitable<void> {
                std::string seen;
                co_await read_until(master, seen, "vm login: ");
                co_await type(master, "\x1d");
            };
            auto forever = std::chrono::milliseconds(std::chrono::hours(1));
            auto [order, attach_ex, end, qemu_ex, received, user_ex, w1_ex, w1, w2_ex, w2] =
                co_await ex::make_parallel_group(
                    asio::co_spawn(exec, attach(sock, on(p)), asio::deferred),
                    asio::co_spawn(exec, qemu(), asio::deferred),
                    asio::co_spawn(exec, user(), asio::deferred),
                    asio::co_spawn(exec, localvm::console::wait_for_console(log, "login:", forever),
                                   asio::deferred),
                    asio::co_spawn(
                        exec,
                        localvm::console::wait_for_console(
                            log, localvm::console::text_matcher::regex("ttyS0$"), forever),
                        asio::deferred))
                    .async_wait(ex::wait_for_one_error(), asio::use_awaitable);
            rethrow_any({attach_ex, qemu_ex, user_ex, w1_ex, w2_ex});
            BOOST_TEST((end == attach_end::detached));
            BOOST_TEST(received == "");
            BOOST_TEST(w1 == "vm login: ");
            BOOST_TEST(w2 == "Debian GNU/Linux 12 vm ttyS0");
        },
        test_deadline);
    BOOST_TEST(same(p.attributes(), before));
}
