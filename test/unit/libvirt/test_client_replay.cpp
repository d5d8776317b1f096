// The client's calls against recorded sessions (data/*.txt) replayed by a
// fake daemon: each call localvm's client makes must carry the procedure
// and payload that libvirt's own client sent for it (byte for byte, under
// localvm's own serial), and the daemon's recorded reply must come back
// decoded to what that client got. Covers the procedures localvm calls
// with the same arguments as virsh or python3-libvirt did.
#define BOOST_TEST_MODULE libvirt_client_replay
#include <localvm/libvirt/client.hpp>
#include <localvm/libvirt/xdr.hpp>
#include <localvm/testing/run.hpp>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "fake_daemon.hpp"
#include "recording.hpp"

namespace asio = boost::asio;
namespace lv = localvm::libvirt;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using libvirt_test::fake_daemon;
using libvirt_test::find;
using libvirt_test::recorded;
using libvirt_test::remote;
using libvirt_test::reply_to;
using lv::remote_procedure;

namespace {

std::vector<recorded> load(const std::string& name) {
    auto& suite = boost::unit_test::framework::master_test_suite();
    BOOST_TEST_REQUIRE(suite.argc >= 2, "pass the data directory after --");
    return libvirt_test::load_recording(std::string(suite.argv[1]) + "/" + name);
}

lv::client_options quiet() {
    lv::client_options o;
    o.keepalive.interval = 0s; // the recordings' replies are all the daemon says
    o.connect_timeout = 10s;
    return o;
}

// Takes the client's next call and checks it against the recorded call
// `c`; answers with the daemon's recorded reply, under the client's serial.
asio::awaitable<void> replay(fake_daemon& d, const std::vector<recorded>& s, const recorded& c) {
    auto m = co_await d.next();
    BOOST_TEST(m.header.program == c.header.program);
    BOOST_TEST(m.header.procedure == c.header.procedure);
    BOOST_TEST((m.header.type == lv::message_type::call));
    BOOST_TEST((m.payload == c.payload),
               "procedure " << c.header.procedure << ": the payload differs from the recording");
    const auto& r = reply_to(s, c);
    auto h = r.header;
    h.serial = m.header.serial;
    std::string out;
    lv::encode_message(out, h, r.payload);
    co_await d.send(out);
}

// The daemon's side: the handshake, `calls` replayed in order, CONNECT_CLOSE.
asio::awaitable<void> serve(fake_daemon& d, const std::vector<recorded>& s,
                            std::vector<const recorded*> calls) {
    co_await d.handshake();
    for (const auto* c : calls)
        co_await replay(d, s, *c);
    auto m = co_await d.expect(libvirt_test::rp(remote_procedure::connect_close));
    co_await d.reply(m, "");
    d.sock.close();
}

template <class T> T decoded(const std::string& payload) {
    std::string problem;
    auto v = lv::decode<T>(payload, problem);
    BOOST_TEST_REQUIRE(v.has_value(), problem);
    return *v;
}

} // namespace

BOOST_AUTO_TEST_CASE(capabilities_create_xml_desc_shutdown_destroy_undefine_as_libvirt_does) {
    const auto s = load("python-lifecycle.txt");
    const auto& caps = find(s, 'C', remote(remote_procedure::connect_get_capabilities));
    const auto& create = find(s, 'C', remote(remote_procedure::domain_create_xml));
    const auto& desc = find(s, 'C', remote(remote_procedure::domain_get_xml_desc));
    const auto& down = find(s, 'C', remote(remote_procedure::domain_shutdown_flags));
    const auto& destroy = find(s, 'C', remote(remote_procedure::domain_destroy_flags));
    const auto& define = find(s, 'C', remote(remote_procedure::domain_define_xml));
    const auto& undefine = find(s, 'C', remote(remote_procedure::domain_undefine));
    const auto transient_xml = decoded<lv::domain_create_xml_args>(create.payload).xml_desc;
    const auto defined_xml = decoded<lv::string_value>(define.payload).value;
    // Not braced inside the co_await below: GCC 12 miscompiles that.
    const std::vector<const recorded*> calls = {&caps,    &create, &desc,    &down,
                                                &destroy, &define, &undefine};
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            fake_daemon d(co_await asio::this_coro::executor);
            auto client_side = [&]() -> asio::awaitable<void> {
                auto c = co_await lv::client::connect(d.uri(), quiet());
                auto capabilities = co_await c.capabilities();
                BOOST_TEST(capabilities.size() == 10853u);
                auto dom = co_await c.create_xml(transient_xml);
                BOOST_TEST(dom.name == "lvtransient");
                BOOST_TEST(dom.id == 1);
                auto xml = co_await c.xml_desc(dom);
                BOOST_TEST(xml.find("<name>lvtransient</name>") != std::string::npos);
                co_await c.shutdown(dom, 1); // VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
                co_await c.destroy(dom);
                auto defined = co_await c.define_xml(defined_xml);
                BOOST_TEST(defined.name == "lvdefined");
                BOOST_TEST(defined.id == -1);
                co_await c.undefine(defined);
                co_await c.close();
                BOOST_TEST((c.end() == lv::connection_end::clean));
            };
            co_await (serve(d, s, calls) && client_side());
        },
        30s, "the python-lifecycle.txt replay");
}

BOOST_AUTO_TEST_CASE(define_lookup_create_state_info_monitor_as_virsh_does) {
    const auto s = load("virsh-domain.txt");
    const auto& define = find(s, 'C', remote(remote_procedure::domain_define_xml));
    const auto& lookup = find(s, 'C', remote(remote_procedure::domain_lookup_by_name));
    const auto& create = find(s, 'C', remote(remote_procedure::domain_create));
    const auto& state = find(s, 'C', remote(remote_procedure::domain_get_state));
    const auto& info = find(s, 'C', remote(remote_procedure::domain_get_info));
    const auto& monitor =
        find(s, 'C', [](const lv::header& h) { return h.program == lv::qemu_program; });
    const auto xml = decoded<lv::string_value>(define.payload).value;
    const auto running = decoded<lv::domain_flags_args>(state.payload).dom;
    const auto command = decoded<lv::monitor_command_args>(monitor.payload).cmd;
    const std::vector<const recorded*> calls = {&define, &lookup, &create, &state, &info, &monitor};
    localvm::testing::run_coroutine(
        [&]() -> asio::awaitable<void> {
            fake_daemon d(co_await asio::this_coro::executor);
            auto client_side = [&]() -> asio::awaitable<void> {
                auto c = co_await lv::client::connect(d.uri(), quiet());
                auto defined = co_await c.define_xml(xml);
                BOOST_TEST(defined.name == "lvtest");
                auto found = co_await c.lookup_domain("lvtest");
                BOOST_TEST((found == defined));
                co_await c.create(defined);
                auto [st, reason] = co_await c.domain_get_state(running);
                BOOST_TEST((st == lv::domain_state::running));
                BOOST_TEST(reason == 1);
                auto in = co_await c.domain_get_info(running);
                BOOST_TEST(in.max_memory_kib == 32768u);
                BOOST_TEST(in.vcpus == 1u);
                auto answer = co_await c.monitor_command(running, command);
                BOOST_TEST(answer.find("CommandNotFound") != std::string::npos, answer);
                co_await c.close();
            };
            co_await (serve(d, s, calls) && client_side());
        },
        30s, "the virsh-domain.txt replay");
}
