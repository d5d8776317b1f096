// The instance-id's hash, pinned: the values below are what libstdc++'s
// std::hash<std::string> gave on x86-64 (GCC 12), where earlier ids came
// from, so a VM created before keeps its id and cloud-init does not run again.
#define BOOST_TEST_MODULE qemu_instance_id
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <string>

#include "instance_id.hpp"

using localvm::qemu::detail::instance_id;
using localvm::qemu::detail::murmur_hash_64a;

namespace {
constexpr std::uint64_t libstdcxx_seed = 0xc70f6907;
}

BOOST_AUTO_TEST_CASE(hash_is_pinned_for_every_tail_length) {
    // Lengths 0, 1, 7 (tail only), 8 (one block), 9 (block and tail), 13, 82.
    BOOST_TEST(murmur_hash_64a("", libstdcxx_seed) == 0x553e93901e462a6eULL);
    BOOST_TEST(murmur_hash_64a("a", libstdcxx_seed) == 0x454ddee488c1ed6bULL);
    BOOST_TEST(murmur_hash_64a("abcdefg", libstdcxx_seed) == 0xdeee6830a3af82afULL);
    BOOST_TEST(murmur_hash_64a("abcdefgh", libstdcxx_seed) == 0x783db3e38db898bbULL);
    BOOST_TEST(murmur_hash_64a("abcdefghi", libstdcxx_seed) == 0xb4ec9257851c8aafULL);
    BOOST_TEST(murmur_hash_64a("hello, world\n", libstdcxx_seed) == 0x949a09e366fe21f2ULL);
    BOOST_TEST(murmur_hash_64a("#cloud-config\nruncmd: [true]\n\n"
                               "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI localvm",
                               libstdcxx_seed) == 0xaaf5a36b3600560dULL);
    BOOST_TEST(murmur_hash_64a("a", 0) != murmur_hash_64a("a", libstdcxx_seed));
}

BOOST_AUTO_TEST_CASE(bytes_above_0x7f_count_as_unsigned) {
    // In a block and in the tail: a sign-extending load would change these.
    BOOST_TEST(murmur_hash_64a(std::string(9, '\xe9'), libstdcxx_seed) == 0x2c852da511e3ce6dULL);
    BOOST_TEST(murmur_hash_64a("caf\xc3\xa9 \xff", libstdcxx_seed) == 0xfd9d61e2e6212374ULL);
}

BOOST_AUTO_TEST_CASE(instance_id_names_the_vm_and_hashes_user_data_and_key) {
    BOOST_TEST(instance_id("web", "", "") == "iid-web-ff5c5a0e3e83b8f0");
    BOOST_TEST(instance_id("web", "#cloud-config\nruncmd: [true]\n",
                           "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI localvm") ==
               "iid-web-aaf5a36b3600560d");
    // Either part changes the id.
    BOOST_TEST(instance_id("web", "a", "b") != instance_id("web", "a", "c"));
    BOOST_TEST(instance_id("web", "a", "b") != instance_id("web", "c", "b"));
}
