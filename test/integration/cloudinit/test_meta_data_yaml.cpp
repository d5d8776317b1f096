// Rendered meta-data round trips through a real YAML parser (PyYAML's
// safe_load) to exactly the given values, however hostile; and the default
// network-config parses to what it claims. Exits 77 only when
// /usr/bin/python3 or its yaml module is absent.
#define BOOST_TEST_MODULE meta_data_yaml
#define BOOST_TEST_NO_MAIN
#include <localvm/cloudinit/nocloud.hpp>

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <sys/wait.h>
#include <unistd.h>

using namespace localvm::cloudinit;
namespace fs = std::filesystem;

namespace {

const char* python = "/usr/bin/python3";

// Loads each case's YAML and compares it with its JSON expectation.
const char* checker = R"PY(
import json, sys, yaml
bad = 0
cases = json.load(open(sys.argv[1], encoding="utf-8"))
for i, want in enumerate(cases):
    text = open(f"{sys.argv[2]}/{i}.yaml", encoding="utf-8").read()
    got = yaml.safe_load(text)
    if got != want:
        bad += 1
        print(f"case {i}: got {got!r}\n  want {want!r}\n  yaml {text!r}")
print(f"{len(cases)} cases, {bad} mismatches")
sys.exit(1 if bad else 0)
)PY";

void write(const fs::path& p, std::string_view s) {
    std::ofstream out(p, std::ios::binary);
    out << s;
}

std::vector<std::string> hostile_values() {
    return {
        "vm1",
        "\"quoted\"",
        "'single'",
        "back\\slash",
        "\\",
        "\"",
        "\\\"",
        "\\\\\\",
        "a\\\"b\\\\c",
        "\\n is not a newline",
        "\\u0041 \\x41 \\0",
        "key: value",
        "a:b",
        ":",
        "# comment",
        "value # trailing comment",
        "#",
        "- item",
        "-",
        "--- ",
        "---",
        "...",
        "{a: b}",
        "[1, 2]",
        "}{][",
        "&anchor",
        "*alias",
        "!!python/object:os.system",
        "!tag",
        "| literal",
        "> folded",
        "%YAML 1.1",
        "@at `tick`",
        "? complex key",
        " leading space",
        "trailing space ",
        "   ",
        "null",
        "~",
        "true",
        "no",
        "0x10",
        "1e3",
        "012",
        "2024-01-01",
        "caf\xC3\xA9 \xC3\xBC\xC3\x9F \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80",
        "nbsp\xC2\xA0here",
        "private\xEE\x80\x80use \xEF\xBF\xBD",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx+/= user@host.example",
        "instance-id: \"injected\"",
        "\", evil: \"x",
        std::string(2000, 'x') + "\"\\",
    };
}

} // namespace

BOOST_AUTO_TEST_CASE(meta_data_round_trips_through_yaml_safe_load) {
    std::string t = (fs::temp_directory_path() / "localvm-yaml-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(t.data()) != nullptr);
    const fs::path dir = t;

    boost::json::array cases;
    auto add = [&](const meta_data& md) {
        boost::json::object want;
        want["instance-id"] = md.instance_id;
        if (!md.local_hostname.empty())
            want["local-hostname"] = md.local_hostname;
        if (!md.public_keys.empty()) {
            boost::json::array keys;
            for (const auto& k : md.public_keys)
                keys.emplace_back(k);
            want["public-keys"] = std::move(keys);
        }
        write(dir / (std::to_string(cases.size()) + ".yaml"), render_meta_data(md));
        cases.emplace_back(std::move(want));
    };
    for (const auto& v : hostile_values()) {
        add({"iid-1", v, {}});
        // instance-id refuses '/' (a directory name for cloud-init).
        add({v.find('/') == std::string::npos ? v : "iid-2", "vm1", {v, "k2"}});
    }
    add({"iid-example", "vm1", {"ssh-ed25519 AAAA... user@host"}});
    add({"iid-only", "", {}});

    // The default network-config, as a case of its own.
    write(dir / (std::to_string(cases.size()) + ".yaml"), default_network_config());
    cases.emplace_back(boost::json::parse(
        R"({"version": 2, "ethernets": {"ethernet": {"match": {"name": "e*"}, "dhcp4": true}}})"));

    write(dir / "cases.json", boost::json::serialize(cases));
    write(dir / "check.py", checker);
    const std::string cmd = std::string(python) + " " + (dir / "check.py").string() + " " +
                            (dir / "cases.json").string() + " " + dir.string() + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    BOOST_TEST_REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
        out.append(buf, n);
    const int status = ::pclose(p);
    BOOST_TEST(WEXITSTATUS(status) == 0, out);
    BOOST_TEST(out.find(" 0 mismatches") != std::string::npos, out);
    BOOST_TEST_MESSAGE(out);
    fs::remove_all(dir);
}

int main(int argc, char* argv[]) {
    if (::access(python, X_OK) != 0 ||
        std::system((std::string(python) + " -c 'import yaml' 2>/dev/null").c_str()) != 0) {
        std::fprintf(stderr, "%s with the yaml module is not installed: skipping\n", python);
        return 77;
    }
    return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
