// Which QEMU failures are KVM's own: only those may turn automatic KVM off
// on a host for good.
#define BOOST_TEST_MODULE qemu_accel
#include <localvm/qemu/accel.hpp>

#include "fallback.hpp"

#include <boost/test/unit_test.hpp>

using localvm::qemu::names_kvm_failure;

BOOST_AUTO_TEST_CASE(kvm_errors_are_recognised) {
    for (const char* text : {
             "Could not access KVM kernel module: Permission denied\n"
             "qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied\n",
             "qemu-system-x86_64: failed to initialize kvm: No such file or directory\n",
             "qemu-system-x86_64: -accel kvm: failed to initialize kvm: Invalid argument",
             "kvm_init_vcpu failed: Cannot allocate memory",
             "ioctl(KVM_CREATE_VM) failed: 12 Cannot allocate memory",
             "error: kvm run failed Bad address",
             "KVM internal error. Suberror: 1\nemulation failure",
             "qemu-system-x86_64: error: failed to set MSR 0x48f to 0x7fffff00036dfb\n"
             "qemu-system-x86_64: ../target/i386/kvm/kvm.c:2893: kvm_buf_set_msrs: Assertion "
             "`ret == cpu->kvm_msr_buf->nmsrs' failed.",
             "qemu-system-x86_64: CPU model 'host' requires KVM or HVF",
             "kvm: no hardware support",
         })
        BOOST_TEST(names_kvm_failure(text), text);
}

BOOST_AUTO_TEST_CASE(other_errors_and_mere_mentions_are_not) {
    for (const char* text : {
             "",
             "qemu-system-x86_64: -nic user,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22: could not "
             "set up host forwarding rule 'tcp:127.0.0.1:2222-:22'",
             "fake-qemu: port in use",
             "qemu-system-x86_64: -drive file=/data/vm/disk.qcow2,if=virtio: Failed to get "
             "\"write\" lock\nIs another process using the image [/data/vm/disk.qcow2]?",
             "qemu-system-x86_64: -drive file=/srv/kvm/disk.qcow2: Could not open: No such file",
             "qemu-system-x86_64: -drive file=/srv/kvm_images/disk.qcow2: Could not open",
             "qemu-system-x86_64: -drive file=/d/vm-kvm_1/disk.qcow2: Could not open",
             "qemu-system-x86_64: -name mykvm: something else",
             "qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory",
         })
        BOOST_TEST(!names_kvm_failure(text), text);
}

// Item 6 of issue 16: the timeline names the KVM attempt and the restart.
BOOST_AUTO_TEST_CASE(spawn_details_name_the_attempt) {
    using localvm::qemu::accel_choice;
    using localvm::qemu::accelerator;
    using localvm::qemu::detail::spawned_detail;
    using namespace std::chrono_literals;
    BOOST_TEST(spawned_detail(12, accel_choice{accelerator::kvm, "/dev/kvm is usable", true}, 20s) ==
               "pid 12, kvm attempt (/dev/kvm is usable; tcg if the guest stays silent for 20 s)");
    BOOST_TEST(spawned_detail(13, accel_choice{accelerator::tcg, "after KVM failed: x", false},
                              20s) == "pid 13, tcg (after KVM failed: x)");
    BOOST_TEST(spawned_detail(14, accel_choice{accelerator::kvm, "kvm requested", false}, 1500ms) ==
               "pid 14, kvm (kvm requested)");
    BOOST_TEST(spawned_detail(15, accel_choice{accelerator::tcg, "", false}, 1s) == "pid 15, tcg");
}

BOOST_AUTO_TEST_CASE(fallback_reasons_are_one_line) {
    using localvm::qemu::detail::fallback_reason;
    using namespace std::chrono_literals;
    BOOST_TEST(fallback_reason("", "", 20s) == "no console output within 20 s");
    BOOST_TEST(fallback_reason("", "x", 2500ms) == "no console output within 2500 ms");
    // QEMU's own line naming KVM, not the generic first line of the error.
    const char* said = "qemu-system-x86_64: warning: host doesn't support requested feature\n"
                       "Could not access KVM kernel module: No such file or directory\n"
                       "qemu-system-x86_64: -accel kvm: failed to initialize kvm\n";
    BOOST_TEST(fallback_reason("qemu exited 1 during start:\nmore", said, 20s) ==
               "Could not access KVM kernel module: No such file or directory");
    BOOST_TEST(fallback_reason("qemu exited 1 during start:\nmore", "nothing of note", 20s) ==
               "qemu exited 1 during start:");
    BOOST_TEST(fallback_reason("a\tb\rc\x1b", "", 20s) == "a b c ");
}
