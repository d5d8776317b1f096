// The libvirt sans-io core against sessions recorded between virsh (or
// python3-libvirt) and a real libvirtd 9.0 (data/*.txt, made with
// data/capture.py; see data/README.md): every message
// is framed back exactly, split at every byte offset; the calls localvm
// makes are encoded byte for byte as virsh encoded them; the daemon's
// replies, errors, events and stream packets decode to what virsh showed.
#define BOOST_TEST_MODULE libvirt_protocol
#include <localvm/error.hpp>
#include <localvm/libvirt/procedures.hpp>
#include <localvm/libvirt/protocol.hpp>
#include <localvm/libvirt/xdr.hpp>

#include <boost/test/unit_test.hpp>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "recording.hpp"

namespace lv = localvm::libvirt;
using libvirt_test::find;
using libvirt_test::num;
using libvirt_test::recorded;
using libvirt_test::remote;
using libvirt_test::reply_to;
using libvirt_test::unhex;
using localvm::errc;

namespace {

std::string data_dir() {
    auto& suite = boost::unit_test::framework::master_test_suite();
    BOOST_TEST_REQUIRE(suite.argc >= 2, "pass the data directory after --");
    return suite.argv[1];
}

std::vector<recorded> load(const std::string& name) {
    return libvirt_test::load_recording(data_dir() + "/" + name);
}

lv::uuid parse_uuid(const std::string& text) {
    std::string hex;
    for (char c : text)
        if (c != '-')
            hex.push_back(c);
    auto raw = unhex(hex);
    BOOST_TEST_REQUIRE(raw.size() == 16u, text);
    lv::uuid u{};
    std::copy(raw.begin(), raw.end(), u.begin());
    return u;
}

lv::header call(std::int32_t proc, std::uint32_t serial,
                std::uint32_t program = lv::remote_program) {
    lv::header h;
    h.program = program;
    h.procedure = proc;
    h.serial = serial;
    return h;
}

// What a call from the recording looks like when localvm encodes it.
std::string our_call(const recorded& r, const std::string& payload) {
    std::string out;
    lv::encode_message(out, call(r.header.procedure, r.header.serial, r.header.program), payload);
    return out;
}

template <class T> T must_decode(const std::string& payload) {
    std::string problem;
    auto v = lv::decode<T>(payload, problem);
    BOOST_TEST_REQUIRE(v.has_value(), problem);
    return *v;
}

} // namespace

BOOST_AUTO_TEST_CASE(every_recorded_message_frames_back_exactly_at_every_split) {
    for (auto name :
         {"virsh-domain.txt", "virsh-volume.txt", "virsh-events.txt", "python-lifecycle.txt"}) {
        auto s = load(name);
        for (char from : {'C', 'S'}) {
            std::string stream;
            std::vector<const recorded*> expect;
            for (auto& r : s)
                if (r.from == from) {
                    stream += r.bytes;
                    expect.push_back(&r);
                }
            // Every split point of the stream into two reads, and byte by byte.
            for (std::size_t split = 0; split <= stream.size(); split += (split < 400 ? 1 : 97)) {
                lv::frame_decoder d;
                std::vector<lv::message> got;
                for (auto part : {std::string_view(stream).substr(0, split),
                                  std::string_view(stream).substr(split)}) {
                    while (!part.empty()) {
                        boost::system::error_code ec;
                        auto m = d.consume(part, ec);
                        BOOST_TEST_REQUIRE(!ec, ec.message() << " " << d.problem());
                        if (m)
                            got.push_back(std::move(*m));
                    }
                }
                BOOST_TEST_REQUIRE(got.size() == expect.size(), name << " split " << split);
                for (std::size_t i = 0; i < got.size(); ++i) {
                    std::string again;
                    lv::encode_message(again, got[i].header, got[i].payload);
                    BOOST_TEST_REQUIRE((again == expect[i]->bytes), name << " message " << i);
                }
                BOOST_TEST(d.buffered() == 0u);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(connection_setup_calls_are_encoded_as_virsh_encodes_them) {
    auto s = load("virsh-domain.txt");
    auto& auth = find(s, 'C', remote(lv::remote_procedure::auth_list));
    BOOST_TEST(our_call(auth, "") == auth.bytes);
    auto ret = must_decode<lv::auth_list_ret>(reply_to(s, auth).payload);
    BOOST_TEST(ret.types == std::vector<std::int32_t>{0}); // REMOTE_AUTH_NONE

    auto& open = find(s, 'C', remote(lv::remote_procedure::connect_open));
    lv::connect_open_args oa;
    oa.name = "qemu:///system";
    BOOST_TEST(our_call(open, lv::encode(oa)) == open.bytes);
    BOOST_TEST(reply_to(s, open).payload.empty());

    auto& ver = find(s, 'C', remote(lv::remote_procedure::connect_get_version));
    BOOST_TEST(our_call(ver, "") == ver.bytes);
    BOOST_TEST(must_decode<lv::connect_get_version_ret>(reply_to(s, ver).payload).hv_ver ==
               7002022u);

    auto& host = find(s, 'C', remote(lv::remote_procedure::connect_get_hostname));
    BOOST_TEST(our_call(host, "") == host.bytes);
    BOOST_TEST(must_decode<lv::string_value>(reply_to(s, host).payload).value == "vm");

    auto& close = find(s, 'C', remote(lv::remote_procedure::connect_close));
    BOOST_TEST(our_call(close, "") == close.bytes);
}

BOOST_AUTO_TEST_CASE(domain_calls_and_replies_match_the_recording) {
    auto s = load("virsh-domain.txt");
    auto& def = find(s, 'C', remote(lv::remote_procedure::domain_define_xml));
    auto xml = must_decode<lv::string_value>(def.payload).value;
    BOOST_TEST(xml.starts_with("<domain type='qemu'>"));
    BOOST_TEST(our_call(def, lv::encode(lv::string_value{xml})) == def.bytes);
    auto defined = must_decode<lv::domain_value>(reply_to(s, def).payload).dom;
    BOOST_TEST(defined.name == "lvtest");
    BOOST_TEST(defined.id == -1); // defined, not running

    auto& look = find(s, 'C', remote(lv::remote_procedure::domain_lookup_by_name));
    BOOST_TEST(our_call(look, lv::encode(lv::string_value{"lvtest"})) == look.bytes);

    auto& create = find(s, 'C', remote(lv::remote_procedure::domain_create));
    BOOST_TEST(our_call(create, lv::encode(lv::domain_value{defined})) == create.bytes);

    auto& state = find(s, 'C', remote(lv::remote_procedure::domain_get_state));
    auto running = must_decode<lv::domain_flags_args>(state.payload).dom;
    BOOST_TEST(running.id == 1);
    BOOST_TEST((running.uuid == defined.uuid));
    BOOST_TEST(our_call(state, lv::encode(lv::domain_flags_args{running, 0})) == state.bytes);
    auto st = must_decode<lv::domain_get_state_ret>(reply_to(s, state).payload);
    BOOST_TEST(st.state == 1);  // VIR_DOMAIN_RUNNING
    BOOST_TEST(st.reason == 1); // VIR_DOMAIN_RUNNING_BOOTED

    auto& info = find(s, 'C', remote(lv::remote_procedure::domain_get_info));
    BOOST_TEST(our_call(info, lv::encode(lv::domain_value{running})) == info.bytes);
    auto in = must_decode<lv::domain_get_info_ret>(reply_to(s, info).payload);
    BOOST_TEST(in.state == 1);
    BOOST_TEST(in.max_mem == 32768u);
    BOOST_TEST(in.memory == 32768u);
    BOOST_TEST(in.nr_virt_cpu == 1);
    BOOST_TEST(in.cpu_time == 250000000u); // "CPU time: 0.2s" in virsh's dominfo

    auto& mon = find(s, 'C', [](auto& h) { return h.program == lv::qemu_program; });
    BOOST_TEST(mon.header.procedure ==
               static_cast<std::int32_t>(lv::qemu_procedure::domain_monitor_command));
    BOOST_TEST(our_call(mon, lv::encode(lv::monitor_command_args{
                                 running, R"({"execute":"{execute:query-status}"})", 0})) ==
               mon.bytes);
    auto answer = must_decode<lv::string_value>(reply_to(s, mon).payload).value;
    BOOST_TEST(answer.find("CommandNotFound") != std::string::npos, answer);

    auto& destroy = find(s, 'C', [](auto& h) {
        return h.program == lv::remote_program && h.procedure == 12;
    }); // virsh: DOMAIN_DESTROY
    BOOST_TEST((must_decode<lv::domain_value>(destroy.payload).dom == running));
    BOOST_TEST((reply_to(s, destroy).header.status == lv::message_status::ok));
}

BOOST_AUTO_TEST_CASE(an_error_reply_decodes_to_libvirts_code_domain_and_message) {
    auto s = load("virsh-domain.txt");
    auto& bad = find(s, 'S', [](auto& h) { return h.status == lv::message_status::error; });
    BOOST_TEST(bad.header.procedure == num(lv::remote_procedure::domain_lookup_by_name));
    BOOST_TEST((bad.header.type == lv::message_type::reply));
    std::string problem;
    auto e = lv::decode_error(bad.payload, problem);
    BOOST_TEST_REQUIRE(e.has_value(), problem);
    BOOST_TEST(e->code == 42);   // VIR_ERR_NO_DOMAIN
    BOOST_TEST(e->domain == 10); // VIR_FROM_QEMU
    BOOST_TEST(e->level == 2);   // VIR_ERR_ERROR
    BOOST_TEST(e->message.value_or("") ==
               "Domain not found: no domain with matching name 'nosuch'");
    // Re-encoded, it is the recorded payload again (dom and net absent).
    BOOST_TEST(lv::encode_error(*e) == bad.payload);
}

BOOST_AUTO_TEST_CASE(keepalive_ping_and_pong_match_the_recording) {
    auto s = load("virsh-domain.txt");
    auto& ping = find(s, 'S', [](auto& h) { return h.program == lv::keepalive_program; });
    lv::header h;
    h.program = lv::keepalive_program;
    h.version = lv::keepalive_version;
    h.procedure = lv::keepalive_ping;
    h.type = lv::message_type::message;
    std::string ours;
    lv::encode_message(ours, h, "");
    BOOST_TEST(ours == ping.bytes);
    auto& pong = find(s, 'C', [](auto& h) {
        return h.program == lv::keepalive_program && h.procedure == lv::keepalive_pong;
    });
    h.procedure = lv::keepalive_pong;
    ours.clear();
    lv::encode_message(ours, h, "");
    BOOST_TEST(ours == pong.bytes);
}

BOOST_AUTO_TEST_CASE(volume_calls_and_upload_stream_match_the_recording) {
    auto s = load("virsh-volume.txt");
    auto& plook = find(s, 'C', remote(lv::remote_procedure::storage_pool_lookup_by_name));
    BOOST_TEST(our_call(plook, lv::encode(lv::string_value{"lvpool"})) == plook.bytes);
    auto pool = must_decode<lv::pool_value>(reply_to(s, plook).payload).pool;
    BOOST_TEST(pool.name == "lvpool");

    auto& create = find(s, 'C', remote(lv::remote_procedure::storage_vol_create_xml));
    auto ca = must_decode<lv::vol_create_xml_args>(create.payload);
    BOOST_TEST((ca.pool == pool));
    BOOST_TEST(ca.xml.find("<name>v1</name>") != std::string::npos, ca.xml);
    BOOST_TEST(our_call(create, lv::encode(lv::vol_create_xml_args{pool, ca.xml, 0})) ==
               create.bytes);
    auto vol = must_decode<lv::vol_value>(reply_to(s, create).payload).vol;
    BOOST_TEST(vol.pool == "lvpool");
    BOOST_TEST(vol.name == "v1");
    BOOST_TEST(vol.key == "/tmp/lvt/pool/v1");

    auto& vlook = find(s, 'C', remote(lv::remote_procedure::storage_vol_lookup_by_name));
    BOOST_TEST(our_call(vlook, lv::encode(lv::vol_lookup_by_name_args{pool, "v1"})) == vlook.bytes);

    auto& up = find(s, 'C', [](auto& h) {
        return h.procedure == num(lv::remote_procedure::storage_vol_upload) &&
               h.type == lv::message_type::call;
    });
    BOOST_TEST(our_call(up, lv::encode(lv::vol_upload_args{vol, 0, 0, 0})) == up.bytes);
    BOOST_TEST(reply_to(s, up).payload.empty());
    // Stream packets carry the call's procedure and serial; data is raw
    // (not XDR-padded); an empty OK packet ends it and the daemon confirms.
    lv::header data = call(up.header.procedure, up.header.serial);
    data.type = lv::message_type::stream;
    data.status = lv::message_status::proceed;
    std::string ours;
    lv::encode_message(ours, data, "hello from localvm\n");
    auto& sent = find(s, 'C', [](auto& h) {
        return h.type == lv::message_type::stream && h.status == lv::message_status::proceed;
    });
    BOOST_TEST(ours == sent.bytes);
    data.status = lv::message_status::ok;
    ours.clear();
    lv::encode_message(ours, data, "");
    auto& fin = find(s, 'C', [](auto& h) {
        return h.type == lv::message_type::stream && h.status == lv::message_status::ok;
    });
    BOOST_TEST(ours == fin.bytes);
    auto& confirm = find(s, 'S', [](auto& h) { return h.type == lv::message_type::stream; });
    BOOST_TEST((confirm.header == data));

    auto& path = find(s, 'C', remote(lv::remote_procedure::storage_vol_get_path));
    BOOST_TEST(our_call(path, lv::encode(lv::vol_value{vol})) == path.bytes);
    BOOST_TEST(must_decode<lv::string_value>(reply_to(s, path).payload).value ==
               "/tmp/lvt/pool/v1");

    auto& del = find(s, 'C', remote(lv::remote_procedure::storage_vol_delete));
    BOOST_TEST(our_call(del, lv::encode(lv::vol_flags_args{vol, 0})) == del.bytes);
}

BOOST_AUTO_TEST_CASE(lifecycle_events_decode_in_order) {
    auto s = load("virsh-events.txt");
    auto& reg =
        find(s, 'C', remote(lv::remote_procedure::connect_domain_event_callback_register_any));
    BOOST_TEST(our_call(reg, lv::encode(lv::event_register_any_args{0, std::nullopt})) ==
               reg.bytes);
    auto id = must_decode<lv::callback_id_value>(reply_to(s, reg).payload).callback_id;
    std::vector<std::pair<int, int>> seen;
    for (auto& r : s) {
        if (r.header.type != lv::message_type::message || r.header.program != lv::remote_program)
            continue;
        BOOST_TEST(r.header.procedure ==
                   num(lv::remote_procedure::domain_event_callback_lifecycle));
        auto m = must_decode<lv::lifecycle_msg>(r.payload);
        BOOST_TEST(m.callback_id == id);
        BOOST_TEST(m.dom.name == "lvtest");
        seen.emplace_back(m.event, m.detail);
    }
    // virsh printed: Defined Added, Resumed Unpaused, Started Booted,
    // Suspended Paused, Resumed Unpaused.
    std::vector<std::pair<int, int>> expect{{0, 0}, {4, 0}, {2, 0}, {3, 0}, {4, 0}};
    BOOST_TEST((seen == expect));
    auto& dereg =
        find(s, 'C', remote(lv::remote_procedure::connect_domain_event_callback_deregister_any));
    BOOST_TEST(our_call(dereg, lv::encode(lv::callback_id_value{id})) == dereg.bytes);
}

BOOST_AUTO_TEST_CASE(framing_errors_are_named_and_final) {
    {
        lv::frame_decoder d;
        std::string bytes("\x00\x00\x00\x0c", 4);
        std::string_view in(bytes);
        boost::system::error_code ec;
        BOOST_TEST(!d.consume(in, ec).has_value());
        BOOST_TEST(ec == errc::protocol_error);
        BOOST_TEST(d.problem() == "message length 12 is shorter than a header (28 bytes)");
        std::string_view more("xyz");
        d.consume(more, ec);
        BOOST_TEST(ec == errc::protocol_error); // stays failed
    }
    {
        lv::frame_decoder d(1000);
        std::string bytes("\x00\x00\x03\xed", 4); // 1005 = 4 + 1001
        std::string_view in(bytes);
        boost::system::error_code ec;
        d.consume(in, ec);
        BOOST_TEST(ec == errc::message_too_large);
        BOOST_TEST(d.problem() == "message length 1005 exceeds the limit of 1000 bytes");
    }
    {
        lv::frame_decoder d;
        std::string bytes;
        lv::header h;
        lv::encode_message(bytes, h, "");
        bytes[4 + 12 + 3] = 9; // type 9
        std::string_view in(bytes);
        boost::system::error_code ec;
        d.consume(in, ec);
        BOOST_TEST(ec == errc::protocol_error);
    }
}

BOOST_AUTO_TEST_CASE(xdr_reader_names_the_first_failure_and_its_offset) {
    {
        std::string b;
        lv::xdr::writer w(b);
        w.u32(5000000);
        lv::xdr::reader r(b);
        r.string();
        BOOST_TEST(r.failed());
        BOOST_TEST(r.problem() == "string length 5000000 exceeds 4194304 at offset 0");
    }
    {
        std::string b("\x00\x00\x00\x02hi\x01\x00", 8);
        lv::xdr::reader r(b);
        r.string();
        BOOST_TEST(r.problem() == "string: non-zero padding at offset 6");
    }
    {
        std::string b("\x00\x00\x00\x07", 4);
        lv::xdr::reader r(b);
        r.boolean();
        BOOST_TEST(r.problem() == "boolean 7 at offset 0");
    }
    {
        std::string b("\x00\x00", 2);
        lv::xdr::reader r(b);
        BOOST_TEST(r.u32() == 0u);
        BOOST_TEST(r.problem() == "unsigned int: needs 4 bytes, 2 left at offset 0");
    }
    {
        std::string problem;
        std::string b(8, '\0');
        BOOST_TEST(!lv::decode<lv::callback_id_value>(b, problem).has_value());
        BOOST_TEST(problem == "4 trailing bytes at offset 4");
        std::string u;
        lv::xdr::writer w(u);
        w.u32(256);
        w.u64(0);
        w.u64(0);
        w.u32(0);
        w.u64(0);
        BOOST_TEST(!lv::decode<lv::domain_get_info_ret>(u, problem).has_value());
        BOOST_TEST(problem == "unsigned char 256 exceeds 255 at offset 0");
    }
    {
        std::string b;
        lv::xdr::writer w(b);
        w.i64(-2);
        w.optional_string(std::nullopt);
        w.optional_string(std::string("abcde"));
        BOOST_TEST(b.size() == 8u + 4u + 4u + 4u + 8u);
        lv::xdr::reader r(b);
        BOOST_TEST(r.i64() == -2);
        BOOST_TEST(!r.optional_string().has_value());
        BOOST_TEST(r.optional_string().value_or("") == "abcde");
        r.expect_end();
        BOOST_TEST(!r.failed());
    }
}

// The calls virsh's sessions lack, as libvirt's own client (python3-libvirt)
// made them: localvm's encoding of each is the recorded one, and the
// daemon's replies decode to what the client returned (record_python.py).
BOOST_AUTO_TEST_CASE(capabilities_create_xml_xml_desc_shutdown_destroy_undefine_match) {
    auto s = load("python-lifecycle.txt");
    auto& caps = find(s, 'C', remote(lv::remote_procedure::connect_get_capabilities));
    BOOST_TEST(our_call(caps, "") == caps.bytes);
    auto capabilities = must_decode<lv::string_value>(reply_to(s, caps).payload).value;
    BOOST_TEST(capabilities.size() == 10853u);
    BOOST_TEST(capabilities.starts_with("<capabilities>"));
    BOOST_TEST(capabilities.find("<domain type='qemu'") != std::string::npos);

    auto& create = find(s, 'C', remote(lv::remote_procedure::domain_create_xml));
    auto ca = must_decode<lv::domain_create_xml_args>(create.payload);
    BOOST_TEST(ca.xml_desc.find("<name>lvtransient</name>") != std::string::npos, ca.xml_desc);
    BOOST_TEST(ca.flags == 0u);
    BOOST_TEST(our_call(create, lv::encode(lv::domain_create_xml_args{ca.xml_desc, 0})) ==
               create.bytes);
    auto transient = must_decode<lv::domain_value>(reply_to(s, create).payload).dom;
    BOOST_TEST(transient.name == "lvtransient");
    BOOST_TEST(transient.id == 1); // created running
    BOOST_TEST((transient.uuid == parse_uuid("854858d8-8612-45d5-8ee6-fc5a45101928")));

    auto& desc = find(s, 'C', remote(lv::remote_procedure::domain_get_xml_desc));
    BOOST_TEST(our_call(desc, lv::encode(lv::domain_flags_args{transient, 0})) == desc.bytes);
    auto xml = must_decode<lv::string_value>(reply_to(s, desc).payload).value;
    BOOST_TEST(xml.size() == 1470u);
    BOOST_TEST(xml.starts_with("<domain type='qemu' id='1'>"), xml);
    BOOST_TEST(xml.find("<uuid>854858d8-8612-45d5-8ee6-fc5a45101928</uuid>") != std::string::npos);

    // ACPI power button (VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN = 1), then a
    // plain destroy: both answered with an empty OK reply.
    auto& down = find(s, 'C', remote(lv::remote_procedure::domain_shutdown_flags));
    BOOST_TEST(our_call(down, lv::encode(lv::domain_flags_args{transient, 1})) == down.bytes);
    auto& down_reply = reply_to(s, down);
    BOOST_TEST((down_reply.header.status == lv::message_status::ok));
    BOOST_TEST(down_reply.payload.empty());
    auto& destroy = find(s, 'C', remote(lv::remote_procedure::domain_destroy_flags));
    BOOST_TEST(our_call(destroy, lv::encode(lv::domain_flags_args{transient, 0})) == destroy.bytes);
    auto& destroy_reply = reply_to(s, destroy);
    BOOST_TEST((destroy_reply.header.status == lv::message_status::ok));
    BOOST_TEST(destroy_reply.payload.empty());

    auto& def = find(s, 'C', remote(lv::remote_procedure::domain_define_xml));
    auto defined = must_decode<lv::domain_value>(reply_to(s, def).payload).dom;
    BOOST_TEST(defined.name == "lvdefined");
    BOOST_TEST(defined.id == -1);
    BOOST_TEST((defined.uuid == parse_uuid("9dad72fe-d72f-4ab4-825d-07980bdba4c4")));
    auto& undefine = find(s, 'C', remote(lv::remote_procedure::domain_undefine));
    BOOST_TEST(our_call(undefine, lv::encode(lv::domain_value{defined})) == undefine.bytes);
    auto& undefine_reply = reply_to(s, undefine);
    BOOST_TEST((undefine_reply.header.status == lv::message_status::ok));
    BOOST_TEST(undefine_reply.payload.empty());
}

// NODE_GET_INFO's `char model[32]` is rpcgen's vector of xdr_char: four
// bytes a char. Written by hand, read back, written again byte for byte;
// any shorter payload fails.
BOOST_AUTO_TEST_CASE(node_info_has_one_xdr_int_per_model_char) {
    std::string bytes;
    lv::xdr::writer w(bytes);
    const std::string model = "x86_64";
    for (std::size_t i = 0; i < 32; ++i)
        w.i32(i < model.size() ? model[i] : 0);
    w.u64(24u * 1024 * 1024); // KiB
    for (std::int32_t x : {2, 2400, 1, 1, 2, 1})
        w.i32(x);
    BOOST_TEST(bytes.size() == 32u * 4 + 8 + 6 * 4);
    std::string problem;
    auto info = lv::decode<lv::node_get_info_ret>(bytes, problem);
    BOOST_REQUIRE_MESSAGE(info.has_value(), problem);
    BOOST_TEST(info->model == "x86_64");
    BOOST_TEST(info->memory_kib == 24u * 1024 * 1024);
    BOOST_TEST(info->cpus == 2);
    BOOST_TEST(info->mhz == 2400);
    BOOST_TEST(info->cores == 2);
    BOOST_TEST(lv::encode(*info) == bytes);
    for (std::size_t n = 0; n < bytes.size(); ++n)
        BOOST_TEST(!lv::decode<lv::node_get_info_ret>(bytes.substr(0, n), problem).has_value());

    const std::string four_gib("\0\0\0\1\0\0\0\0", 8);
    auto free = lv::decode<lv::node_get_free_memory_ret>(four_gib, problem);
    BOOST_REQUIRE(free.has_value());
    BOOST_TEST(free->free_bytes == 1ull << 32);
}
