// Which QEMU failures are KVM's own: only those may turn automatic KVM off
// on a host for good.
#define BOOST_TEST_MODULE qemu_accel
#include <localvm/qemu/accel.hpp>

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
