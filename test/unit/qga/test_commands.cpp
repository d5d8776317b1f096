#define BOOST_TEST_MODULE qga_commands
#include <localvm/error.hpp>
#include <localvm/qga/commands.hpp>
#include <localvm/qga/protocol.hpp>

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <optional>
#include <ostream>
#include <string>

#include "qga/base64.hpp"

namespace qga = localvm::qga;
namespace json = boost::json;
using localvm::errc;

namespace std {
// Boost.Test prints optionals in failure messages.
template <class T>
std::ostream& boost_test_print_type(std::ostream& os, const std::optional<T>& v) {
    if (v)
        return os << *v;
    return os << "nullopt";
}
} // namespace std

namespace {

// The bytes a request becomes as the first call of a synced session (id 2).
std::string wire(const qga::request& r) {
    qga::session s;
    std::string out;
    s.begin_sync(out, 1);
    std::string_view reply = "\xff{\"return\": 1}\n";
    boost::system::error_code ec;
    s.consume(reply, ec);
    out.clear();
    s.begin_call(out, r.command, r.arguments, r.success_response, ec);
    BOOST_TEST_REQUIRE(!ec);
    return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(base64_round_trip) {
    using qga::detail::base64_decode;
    using qga::detail::base64_encode;
    const std::pair<std::string, std::string> known[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"},
                                                         {std::string("\0\xff\xfe", 3), "AP/+"}};
    for (auto& [plain, coded] : known) {
        std::string out;
        base64_encode(plain, out);
        BOOST_TEST(out == coded);
        BOOST_TEST(base64_decode(coded) == plain);
    }
    std::string all;
    for (int i = 0; i < 256; ++i)
        all += static_cast<char>(i);
    std::string coded;
    base64_encode(all, coded);
    BOOST_TEST(base64_decode(coded) == all);
    for (auto bad : {"Zg=", "Zg", "Z===", "Zg==Zg==", "Zm9v\n", "Zm9-", "Zh==", "Zm9=", "=Zg="})
        BOOST_TEST(!base64_decode(bad), bad);
}

BOOST_AUTO_TEST_CASE(request_bytes) {
    BOOST_TEST(wire(qga::make_ping()) == "{\"execute\":\"guest-ping\",\"id\":2}\r\n");
    qga::exec_request e;
    e.argv = {"/bin/sh", "-c", "echo \"$X\"; exit 7"};
    e.env = {"X=1", "PATH=/bin"};
    e.input = std::string("in\0put", 6);
    BOOST_TEST(wire(qga::make_exec(e)) ==
               "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/sh\",\"arg\":[\"-c\","
               "\"echo \\\"$X\\\"; exit 7\"],\"env\":[\"X=1\",\"PATH=/bin\"],\"input-data\":"
               "\"aW4AcHV0\",\"capture-output\":true},\"id\":2}\r\n");
    qga::exec_request plain;
    plain.argv = {"true"};
    plain.capture_output = false;
    BOOST_TEST(wire(qga::make_exec(plain)) ==
               "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"true\",\"capture-output\":"
               "false},\"id\":2}\r\n");
    BOOST_TEST(wire(qga::make_exec_status(1234)) ==
               "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":1234},\"id\":2}\r\n");
    BOOST_TEST(wire(qga::make_file_open("/tmp/a b", "w")) ==
               "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/tmp/a b\",\"mode\":"
               "\"w\"},\"id\":2}\r\n");
    BOOST_TEST(wire(qga::make_file_read(1000, 65536)) ==
               "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":1000,\"count\":65536},"
               "\"id\":2}\r\n");
    BOOST_TEST(wire(qga::make_file_write(1000, "hello")) ==
               "{\"execute\":\"guest-file-write\",\"arguments\":{\"handle\":1000,\"buf-b64\":"
               "\"aGVsbG8=\"},\"id\":2}\r\n");
    BOOST_TEST(wire(qga::make_file_close(1000)) ==
               "{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":1000},\"id\":2}\r\n");
    BOOST_TEST(wire(qga::make_network_get_interfaces()) ==
               "{\"execute\":\"guest-network-get-interfaces\",\"id\":2}\r\n");
    BOOST_TEST(wire(qga::make_set_time(std::chrono::nanoseconds(1700000000123456789))) ==
               "{\"execute\":\"guest-set-time\",\"arguments\":{\"time\":1700000000123456789},"
               "\"id\":2}\r\n");
    BOOST_TEST(wire(qga::make_set_time(std::nullopt)) ==
               "{\"execute\":\"guest-set-time\",\"id\":2}\r\n");
    BOOST_TEST(wire(qga::make_shutdown(qga::shutdown_mode::reboot)) ==
               "{\"execute\":\"guest-shutdown\",\"arguments\":{\"mode\":\"reboot\"},\"id\":2}\r\n"
               "{\"execute\":\"guest-ping\",\"id\":3}\r\n");
    BOOST_TEST(qga::make_shutdown(qga::shutdown_mode::halt).arguments.at("mode") == "halt");
    BOOST_TEST(qga::make_shutdown(qga::shutdown_mode::powerdown).arguments.at("mode") ==
               "powerdown");
}

BOOST_AUTO_TEST_CASE(parse_exec_replies) {
    boost::system::error_code ec;
    BOOST_TEST(qga::parse_exec_pid(json::parse(R"({"pid": 15935})"), ec) == 15935);
    BOOST_TEST(!ec);
    // As qemu-ga 7.2 answers (captured from the agent).
    auto s = qga::parse_exec_status(
        json::parse(R"({"exitcode": 7, "err-data": "ZXJyCg==", "out-data": "b3V0Cg==",
                       "err-truncated": false, "out-truncated": false, "exited": true})"),
        ec);
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST(s->exited);
    BOOST_TEST(s->exit_code == 7);
    BOOST_TEST(!s->signal);
    BOOST_TEST(s->out == "out\n");
    BOOST_TEST(s->err == "err\n");
    BOOST_TEST(!s->out_truncated);
    s = qga::parse_exec_status(json::parse(R"({"signal": 9, "exited": true})"), ec);
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST(s->signal == 9);
    BOOST_TEST(!s->exit_code);
    BOOST_TEST(s->out.empty());
    s = qga::parse_exec_status(json::parse(R"({"exited": false})"), ec);
    BOOST_TEST_REQUIRE(s.has_value());
    BOOST_TEST(!s->exited);
    for (auto bad :
         {R"({})", R"([])", R"({"exited": 1})", R"({"exited": true, "exitcode": "7"})",
          R"({"exited": true, "out-data": "!!"})", R"({"exited": true, "exitcode": 9999999999})",
          R"({"exited": true, "out-truncated": 1})"}) {
        BOOST_TEST(!qga::parse_exec_status(json::parse(bad), ec), bad);
        BOOST_TEST(ec == errc::protocol_error);
    }
    BOOST_TEST(!qga::parse_exec_pid(json::parse(R"({"pid": "1"})"), ec));
    BOOST_TEST(ec == errc::protocol_error);
}

BOOST_AUTO_TEST_CASE(parse_file_replies) {
    boost::system::error_code ec;
    BOOST_TEST(qga::parse_file_handle(json::parse("1000"), ec) == 1000);
    BOOST_TEST(!qga::parse_file_handle(json::parse("{}"), ec));
    auto c = qga::parse_file_read(
        json::parse(R"({"count": 5, "buf-b64": "aGVsbG8=", "eof": false})"), ec);
    BOOST_TEST_REQUIRE(c.has_value());
    BOOST_TEST(c->data == "hello");
    BOOST_TEST(!c->eof);
    c = qga::parse_file_read(json::parse(R"({"count": 0, "buf-b64": "", "eof": true})"), ec);
    BOOST_TEST_REQUIRE(c.has_value());
    BOOST_TEST(c->eof);
    // The count must match the data.
    BOOST_TEST(!qga::parse_file_read(
        json::parse(R"({"count": 4, "buf-b64": "aGVsbG8=", "eof": false})"), ec));
    BOOST_TEST(ec == errc::protocol_error);
    BOOST_TEST(!qga::parse_file_read(json::parse(R"({"count": 5, "buf-b64": "aGVsbG8="})"), ec));
    BOOST_TEST(qga::parse_file_write(json::parse(R"({"count": 5, "eof": false})"), ec) == 5u);
    BOOST_TEST(!qga::parse_file_write(json::parse(R"({"count": -1})"), ec));
}

BOOST_AUTO_TEST_CASE(parse_interfaces) {
    boost::system::error_code ec;
    auto v = qga::parse_network_interfaces(json::parse(R"([
        {"name": "lo", "ip-addresses": [
            {"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
            {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}],
         "statistics": {"tx-packets": 1}, "hardware-address": "00:00:00:00:00:00"},
        {"name": "ifb0", "hardware-address": "22:90:19:74:fc:93"},
        {"name": "sit0"}])"),
                                           ec);
    BOOST_TEST_REQUIRE(v.has_value());
    BOOST_TEST_REQUIRE(v->size() == 3u);
    BOOST_TEST((*v)[0].name == "lo");
    BOOST_TEST((*v)[0].hardware_address == "00:00:00:00:00:00");
    BOOST_TEST_REQUIRE((*v)[0].addresses.size() == 2u);
    BOOST_TEST((*v)[0].addresses[1].type == "ipv6");
    BOOST_TEST((*v)[0].addresses[1].address == "::1");
    BOOST_TEST((*v)[0].addresses[1].prefix == 128);
    BOOST_TEST((*v)[1].addresses.empty());
    BOOST_TEST((*v)[2].hardware_address.empty());
    for (auto bad :
         {R"({})", R"([{"hardware-address": "x"}])", R"([{"name": "a", "ip-addresses": {}}])",
          R"([{"name": "a", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "1"}]}])"}) {
        BOOST_TEST(!qga::parse_network_interfaces(json::parse(bad), ec), bad);
        BOOST_TEST(ec == errc::protocol_error);
    }
}
