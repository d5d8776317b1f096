#define BOOST_TEST_MODULE qmp_protocol
#include <localvm/error.hpp>
#include <localvm/qmp/protocol.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace qmp = localvm::qmp;
namespace json = boost::json;
using localvm::errc;

namespace {

std::string data_dir() {
    auto& suite = boost::unit_test::framework::master_test_suite();
    BOOST_TEST_REQUIRE(suite.argc >= 2, "pass the data directory after --");
    return suite.argv[1];
}

std::string slurp(const std::string& name) {
    std::ifstream in(data_dir() + "/" + name, std::ios::binary);
    BOOST_TEST_REQUIRE(in.good(), "cannot open " << name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// One line per message or error, for comparing whole decodes.
std::string describe(const qmp::message& m) {
    struct {
        std::string operator()(const qmp::greeting& g) const {
            std::string caps;
            for (auto& c : g.capabilities)
                caps += c + ",";
            return "greeting " + std::to_string(g.qemu.major) + "." + std::to_string(g.qemu.minor) +
                   "." + std::to_string(g.qemu.micro) + " [" + g.qemu.package + "] " + caps;
        }
        std::string operator()(const qmp::success& s) const {
            return "success id=" + json::serialize(s.id) + " " + json::serialize(s.result);
        }
        std::string operator()(const qmp::failure& f) const {
            return "failure id=" + json::serialize(f.id) + " " + f.error_class + ": " + f.desc;
        }
        std::string operator()(const qmp::event& e) const {
            return "event " + e.name + " " + json::serialize(e.data) + " @" +
                   std::to_string(e.seconds) + "." + std::to_string(e.microseconds);
        }
    } v;
    return std::visit(v, m);
}

// Feeds `chunks` in order and records everything the decoder yields.
std::vector<std::string> decode(const std::vector<std::string_view>& chunks,
                                std::size_t max = qmp::default_max_message_size) {
    qmp::decoder d(max);
    std::vector<std::string> out;
    for (auto chunk : chunks) {
        while (!chunk.empty()) {
            boost::system::error_code ec;
            auto m = d.consume(chunk, ec);
            if (ec)
                out.push_back("error " + ec.message());
            else if (m)
                out.push_back(describe(*m));
        }
    }
    return out;
}

std::vector<std::string> decode(std::string_view all,
                                std::size_t max = qmp::default_max_message_size) {
    return decode(std::vector<std::string_view>{all}, max);
}

std::vector<qmp::message> messages(std::string_view in) {
    qmp::decoder d;
    std::vector<qmp::message> out;
    while (!in.empty()) {
        boost::system::error_code ec;
        auto m = d.consume(in, ec);
        BOOST_TEST_REQUIRE(!ec, ec.message());
        if (m)
            out.push_back(std::move(*m));
    }
    BOOST_TEST(d.buffered() == 0u);
    return out;
}

const char* const transcripts[] = {"qemu-7.2-session.txt", "qemu-7.2-session-oob.txt",
                                   "qemu-7.2-errors.txt"};

} // namespace

BOOST_AUTO_TEST_CASE(real_qemu_session_is_classified) {
    auto text = slurp("qemu-7.2-session.txt");
    BOOST_TEST(text.find("\r\n") != std::string::npos); // QEMU frames with CRLF
    auto ms = messages(text);
    BOOST_TEST_REQUIRE(ms.size() == 15u);

    auto& g = std::get<qmp::greeting>(ms[0]);
    BOOST_TEST(g.qemu.major == 7);
    BOOST_TEST(g.qemu.minor == 2);
    BOOST_TEST(g.qemu.micro == 22);
    BOOST_TEST(g.qemu.package.find("Debian") == 0u);
    BOOST_TEST(g.capabilities == std::vector<std::string>{"oob"});

    auto& caps = std::get<qmp::success>(ms[1]);
    BOOST_TEST(qmp::numeric_id(caps.id).value_or(0) == 1u);
    BOOST_TEST(caps.result.as_object().empty());

    auto& st = std::get<qmp::success>(ms[2]);
    BOOST_TEST(st.result.at("status").as_string() == "prelaunch");
    BOOST_TEST(st.result.at("running").as_bool() == false);

    auto& resume = std::get<qmp::event>(ms[4]);
    BOOST_TEST(resume.name == "RESUME");
    BOOST_TEST(resume.data.empty());
    BOOST_TEST(resume.seconds > 1600000000);
    BOOST_TEST(resume.microseconds >= 0);
    BOOST_TEST(std::get<qmp::event>(ms[6]).name == "STOP");

    auto& unknown = std::get<qmp::failure>(ms[8]);
    BOOST_TEST(qmp::numeric_id(unknown.id).value_or(0) == 6u);
    BOOST_TEST(unknown.error_class == "CommandNotFound");
    BOOST_TEST(unknown.desc == "The command no-such-command has not been found");

    BOOST_TEST(std::get<qmp::success>(ms[9]).result.as_string() == "VM status: paused\r\n");

    auto& bad_arg = std::get<qmp::failure>(ms[10]);
    BOOST_TEST(bad_arg.id.as_string() == "str-id");
    BOOST_TEST(!qmp::numeric_id(bad_arg.id));
    BOOST_TEST(bad_arg.error_class == "GenericError");

    BOOST_TEST(std::get<qmp::event>(ms[11]).name == "POWERDOWN");
    auto& shutdown = std::get<qmp::event>(ms[13]);
    BOOST_TEST(shutdown.name == "SHUTDOWN");
    BOOST_TEST(shutdown.data.at("reason").as_string() == "host-qmp-quit");
    BOOST_TEST(shutdown.data.at("guest").as_bool() == false);
    BOOST_TEST(qmp::numeric_id(std::get<qmp::success>(ms[14]).id).value_or(0) == 9u);
}

BOOST_AUTO_TEST_CASE(lf_framing_and_id_less_errors) {
    auto oob = messages(slurp("qemu-7.2-session-oob.txt"));
    BOOST_TEST(oob.size() == 15u);
    auto errs = messages(slurp("qemu-7.2-errors.txt"));
    BOOST_TEST_REQUIRE(errs.size() == 6u);
    BOOST_TEST(std::get<qmp::failure>(errs[2]).desc == "The command query-status does not support OOB");
    auto& no_id = std::get<qmp::failure>(errs[3]);
    BOOST_TEST(no_id.id.is_null());
    BOOST_TEST(no_id.desc == "QMP input must be a JSON object");
    BOOST_TEST(std::get<qmp::success>(errs[4]).result.as_string().empty());
}

BOOST_AUTO_TEST_CASE(every_split_offset_yields_the_same_messages) {
    for (auto name : transcripts) {
        auto text = slurp(name);
        auto whole = decode(text);
        BOOST_TEST_REQUIRE(!whole.empty());
        std::string_view v(text);
        for (std::size_t i = 0; i <= v.size(); ++i) {
            auto split = decode({v.substr(0, i), v.substr(i)});
            BOOST_TEST_REQUIRE(split == whole, name << " split at " << i);
        }
        std::vector<std::string_view> bytes;
        for (std::size_t i = 0; i < v.size(); ++i)
            bytes.push_back(v.substr(i, 1));
        BOOST_TEST(decode(bytes) == whole, name << " byte by byte");
    }
}

BOOST_AUTO_TEST_CASE(many_messages_in_one_read_and_blank_lines) {
    std::string in = "\r\n{\"return\": {}, \"id\": 1}\n\n  \r\n{\"event\": \"STOP\", \"timestamp\": "
                     "{\"seconds\": 1, \"microseconds\": 2}}\r\n{\"return\": 5, \"id\": 2}\r\n";
    auto out = decode(in);
    BOOST_TEST_REQUIRE(out.size() == 3u);
    BOOST_TEST(out[0] == "success id=1 {}");
    BOOST_TEST(out[1] == "event STOP {} @1.2");
    BOOST_TEST(out[2] == "success id=2 5");
}

BOOST_AUTO_TEST_CASE(malformed_messages_are_errors_and_decoding_goes_on) {
    const std::string ok = "{\"return\": {}, \"id\": 7}\r\n";
    const char* const bad[] = {
        "garbage",
        "{\"return\": {}",             // truncated JSON
        "{\"return\": {}}}",           // trailing bytes
        "{} {}",                       // two values on a line
        "[1, 2]",                      // not an object
        "42",
        "\"text\"",
        "null",
        "{}",
        "{\"unrelated\": 1}",
        "{\"error\": {\"class\": \"GenericError\"}}", // no desc
        "{\"error\": {\"desc\": \"x\"}}",             // no class
        "{\"error\": \"text\"}",
        "{\"error\": {\"class\": 1, \"desc\": \"x\"}}",
        "{\"event\": 5}",
        "{\"event\": \"STOP\", \"data\": [1]}",
        "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": \"x\", \"microseconds\": 1}}",
        "{\"event\": \"STOP\", \"timestamp\": 3}",
        "{\"QMP\": {}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": []}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}}, "
        "\"capabilities\": [1]}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 1e400, \"minor\": 2, \"micro\": 0}}, "
        "\"capabilities\": []}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 99999999999, \"minor\": 2, \"micro\": 0}}, "
        "\"capabilities\": []}}",
        "\xff\xfe{}",
    };
    for (auto b : bad) {
        auto out = decode(std::string(b) + "\r\n" + ok);
        BOOST_TEST_REQUIRE(out.size() == 2u, b);
        BOOST_TEST(out[0] == "error " + localvm::make_error_code(errc::protocol_error).message(), b);
        BOOST_TEST(out[1] == "success id=7 {}", b);
    }
    // Nesting far deeper than the JSON parser allows is an error, not a crash.
    std::string deep = "{\"return\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
    auto out = decode(deep + "\n" + ok);
    BOOST_TEST_REQUIRE(out.size() == 2u);
    BOOST_TEST(out[0].find("error") == 0u);
}

BOOST_AUTO_TEST_CASE(oversized_messages_are_rejected_without_buffering) {
    const std::size_t max = 64;
    const std::string ok = "{\"return\": {}, \"id\": 7}\r\n";
    const std::string too_large = "error " + localvm::make_error_code(errc::message_too_large).message();
    std::string big = "{\"return\": \"" + std::string(200, 'x') + "\", \"id\": 1}\r\n";
    // Whole, and split at every offset: one error, then the next message.
    std::string all = big + ok;
    std::string_view v(all);
    for (std::size_t i = 0; i <= v.size(); ++i) {
        auto out = decode({v.substr(0, i), v.substr(i)}, max);
        BOOST_TEST_REQUIRE(out.size() == 2u, "split at " << i);
        BOOST_TEST(out[0] == too_large);
        BOOST_TEST(out[1] == "success id=7 {}");
    }
    // A never-ending line is dropped as it comes: memory stays bounded.
    qmp::decoder d(max);
    int errors = 0;
    std::string chunk(1000, 'y');
    for (int i = 0; i < 100; ++i) {
        std::string_view in(chunk);
        boost::system::error_code ec;
        while (!in.empty()) {
            d.consume(in, ec);
            errors += ec ? 1 : 0;
        }
        BOOST_TEST(d.buffered() <= max + 1);
    }
    BOOST_TEST(errors == 1);
    // A message of exactly the limit passes, CR not counted.
    std::string exact = "{\"return\": \"" + std::string(max - 23, 'z') + "\", \"id\": 3}";
    BOOST_TEST_REQUIRE(exact.size() == max);
    auto out = decode(exact + "\r\n", max);
    BOOST_TEST_REQUIRE(out.size() == 1u);
    BOOST_TEST(out[0].find("success id=3") == 0u);
    BOOST_TEST(decode(exact + " \r\n", max) == std::vector<std::string>{too_large});
}

BOOST_AUTO_TEST_CASE(encoder_builds_commands_with_unique_ids) {
    qmp::encoder e;
    std::string out;
    BOOST_TEST(e.encode(out, "qmp_capabilities") == 1u);
    BOOST_TEST(out == "{\"execute\":\"qmp_capabilities\",\"id\":1}\r\n");
    out.clear();
    json::object args;
    args["command-line"] = "info usernet";
    BOOST_TEST(e.encode(out, "human-monitor-command", args) == 2u);
    BOOST_TEST(out == "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":"
                      "\"info usernet\"},\"id\":2}\r\n");
    out.clear();
    BOOST_TEST(e.encode(out, "migrate-pause", {}, true) == 3u);
    BOOST_TEST(out == "{\"exec-oob\":\"migrate-pause\",\"id\":3}\r\n");
    out.clear();
    e.encode(out, "we\"ird\n");
    auto v = json::parse(out);
    BOOST_TEST(v.at("execute").as_string() == "we\"ird\n");
    BOOST_TEST(out.find('\n') == out.size() - 1); // one line, whatever the name holds
    BOOST_TEST(e.next_id() == 5u);
}

BOOST_AUTO_TEST_CASE(numeric_ids) {
    BOOST_TEST(qmp::numeric_id(json::value(5)).value_or(0) == 5u);
    BOOST_TEST(qmp::numeric_id(json::value(std::uint64_t(1) << 63)).value_or(0) == std::uint64_t(1) << 63);
    BOOST_TEST(!qmp::numeric_id(json::value(-1)));
    BOOST_TEST(!qmp::numeric_id(json::value("5")));
    BOOST_TEST(!qmp::numeric_id(json::value(1.5)));
    BOOST_TEST(!qmp::numeric_id(json::value()));
}
