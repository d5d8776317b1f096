// The public header compiles alone: it is included first, before anything.
#include <localvm/cloudinit/iso9660.hpp>

int main() {
    return localvm::cloudinit::iso_options{}.volume_id == "cidata" ? 0 : 1;
}
