// The public header compiles alone: it is included first, before anything.
#include <localvm/cloudinit/nocloud.hpp>

int main() {
    return localvm::cloudinit::default_network_config().empty() ? 1 : 0;
}
