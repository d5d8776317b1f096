// create's judgement of a base image, from qemu-img 7.2's own JSON.
#define BOOST_TEST_MODULE qemu_image
#include <boost/test/unit_test.hpp>

#include <set>

#include "firmware.hpp"
#include "image.hpp"

using namespace localvm::qemu::detail;

namespace {

// qemu-img info --output=json of images made with qemu-img 7.2:
// qemu-img create -f qcow2 -F raw -b /tmp/lockexp/key.raw bk.qcow2
const char* backed = R"({
    "backing-filename-format": "raw",
    "virtual-size": 1048576,
    "filename": "bk.qcow2",
    "cluster-size": 65536,
    "format": "qcow2",
    "actual-size": 200704,
    "format-specific": {
        "type": "qcow2",
        "data": {
            "compat": "1.1",
            "compression-type": "zlib",
            "lazy-refcounts": false,
            "refcount-bits": 16,
            "corrupt": false,
            "extended-l2": false
        }
    },
    "full-backing-filename": "/tmp/lockexp/key.raw",
    "backing-filename": "/tmp/lockexp/key.raw",
    "dirty-flag": false
})";

// qemu-img create -f qcow2 -o data_file=/tmp/lockexp/data.raw df.qcow2 1M
const char* data_file = R"({
    "virtual-size": 1048576,
    "filename": "df.qcow2",
    "cluster-size": 65536,
    "format": "qcow2",
    "actual-size": 200704,
    "format-specific": {
        "type": "qcow2",
        "data": {
            "compat": "1.1",
            "compression-type": "zlib",
            "lazy-refcounts": false,
            "refcount-bits": 16,
            "data-file": "/tmp/lockexp/data.raw",
            "data-file-raw": false,
            "corrupt": false,
            "extended-l2": false
        }
    },
    "dirty-flag": false
})";

// qemu-img create -f vmdk -o subformat=monolithicFlat flat.vmdk 1M
const char* vmdk_flat = R"({
    "virtual-size": 1048576,
    "filename": "flat.vmdk",
    "format": "vmdk",
    "actual-size": 8192,
    "format-specific": {
        "type": "vmdk",
        "data": {
            "cid": 3042992154,
            "parent-cid": 4294967295,
            "create-type": "monolithicFlat",
            "extents": [
                {
                    "virtual-size": 1048576,
                    "filename": "flat-flat.vmdk",
                    "format": "FLAT"
                }
            ]
        }
    },
    "dirty-flag": false
})";

// qemu-img create -f vmdk sparse.vmdk 1M: its one extent is itself.
const char* vmdk_sparse = R"({
    "virtual-size": 1048576,
    "filename": "sparse.vmdk",
    "cluster-size": 65536,
    "format": "vmdk",
    "actual-size": 12288,
    "format-specific": {
        "type": "vmdk",
        "data": {
            "cid": 2143971778,
            "parent-cid": 4294967295,
            "create-type": "monolithicSparse",
            "extents": [
                {
                    "virtual-size": 1048576,
                    "filename": "sparse.vmdk",
                    "cluster-size": 65536,
                    "format": ""
                }
            ]
        }
    },
    "dirty-flag": false
})";

// qemu-img create -f qcow2 base.qcow2 64M
const char* plain = R"({
    "virtual-size": 67108864,
    "filename": "base.qcow2",
    "cluster-size": 65536,
    "format": "qcow2",
    "actual-size": 200704,
    "format-specific": {
        "type": "qcow2",
        "data": {"compat": "1.1", "compression-type": "zlib", "lazy-refcounts": false,
                 "refcount-bits": 16, "corrupt": false, "extended-l2": false}
    },
    "dirty-flag": false
})";

const char* raw = R"({"virtual-size": 1048576, "filename": "key.raw", "format": "raw",
    "actual-size": 4096, "dirty-flag": false})";

std::vector<std::string> refs(const char* json) {
    auto info = parse_image_info(json);
    BOOST_REQUIRE(info);
    return info->references;
}

} // namespace

BOOST_AUTO_TEST_CASE(self_contained_images_name_no_other_file) {
    auto info = parse_image_info(plain);
    BOOST_REQUIRE(info);
    BOOST_TEST(info->format == "qcow2");
    BOOST_TEST(info->references.empty());
    BOOST_TEST(refuse_base(*info, "/img/base.qcow2", false) == "");
    info = parse_image_info(raw);
    BOOST_REQUIRE(info);
    BOOST_TEST(info->format == "raw");
    BOOST_TEST(info->references.empty());
    BOOST_TEST(refs(vmdk_sparse).empty());
}

BOOST_AUTO_TEST_CASE(backing_files_data_files_and_foreign_extents_are_named) {
    BOOST_TEST(refs(backed) == std::vector<std::string>{"backing file /tmp/lockexp/key.raw"});
    BOOST_TEST(refs(data_file) == std::vector<std::string>{"data file /tmp/lockexp/data.raw"});
    BOOST_TEST(refs(vmdk_flat) == std::vector<std::string>{"extent flat-flat.vmdk"});
    // A backing file qemu-img could not resolve still counts.
    BOOST_TEST(refs(R"({"format": "qcow2", "backing-filename": "json:{}"})") ==
               std::vector<std::string>{"backing file json:{}"});
}

BOOST_AUTO_TEST_CASE(a_base_naming_other_files_is_refused_unless_allowed) {
    auto info = parse_image_info(backed);
    BOOST_REQUIRE(info);
    auto why = refuse_base(*info, "/img/bk.qcow2", false);
    BOOST_TEST(why ==
               "base image /img/bk.qcow2 (qcow2) makes QEMU open other files, which the guest "
               "could then read: backing file /tmp/lockexp/key.raw; use a self-contained image "
               "(qemu-img convert), or set qemu::options::allow_base_backing_chain for an image "
               "you made");
    BOOST_TEST(refuse_base(*info, "/img/bk.qcow2", true) == "");
}

BOOST_AUTO_TEST_CASE(unreadable_output_has_no_format) {
    for (const char* bad :
         {"", "not json", "[]", R"({"filename": "x"})", R"({"format": 3})", R"({"format": ""})"})
        BOOST_TEST(!parse_image_info(bad).has_value(), bad);
    // Odd shapes elsewhere are ignored, not trusted.
    auto info = parse_image_info(R"({"format": "qcow2", "format-specific": {"data": []}})");
    BOOST_REQUIRE(info);
    BOOST_TEST(info->references.empty());
}

BOOST_AUTO_TEST_CASE(qemu_img_info_runs_under_limits) {
    auto argv = limited_info_argv("/usr/bin/qemu-img", "/img/base.qcow2");
    BOOST_TEST(argv == (std::vector<std::string>{"prlimit", "--as=1073741824", "--cpu=30", "--",
                                                 "/usr/bin/qemu-img", "info", "--output=json",
                                                 "/img/base.qcow2"}));
}

BOOST_AUTO_TEST_CASE(firmware_is_only_a_split_image_with_its_vars_template) {
    std::string package;
    // Debian's combined /usr/share/ovmf/OVMF.fd alone cannot give a VM its
    // own variable store: no firmware, and start says which package to get.
    auto only = [](std::set<std::string> present) {
        return [present](const std::filesystem::path& p) {
            return present.count(p.string()) > 0;
        };
    };
    BOOST_TEST(
        !find_firmware(localvm::qemu::arch::amd64, package, only({"/usr/share/ovmf/OVMF.fd"}))
             .has_value());
    BOOST_TEST(package == "ovmf");
    // A code image whose template is missing is passed over.
    auto f = find_firmware(localvm::qemu::arch::amd64, package,
                           only({"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd",
                                 "/usr/share/OVMF/OVMF_VARS.fd"}));
    BOOST_REQUIRE(f);
    BOOST_TEST(f->code == "/usr/share/OVMF/OVMF_CODE.fd");
    BOOST_TEST(f->vars_template == "/usr/share/OVMF/OVMF_VARS.fd");
    BOOST_TEST(!find_firmware(localvm::qemu::arch::arm64, package,
                              only({"/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"}))
                    .has_value());
    BOOST_TEST(package == "qemu-efi-aarch64");
    for (auto a : {localvm::qemu::arch::amd64, localvm::qemu::arch::arm64})
        for (const auto& c : firmware_candidates(a, package)) {
            BOOST_TEST(c.code.filename().string().find("CODE") != std::string::npos);
            BOOST_TEST(c.vars_template.filename().string().find("VARS") != std::string::npos);
        }
}
