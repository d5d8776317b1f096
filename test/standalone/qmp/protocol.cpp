// The header compiles on its own (included first).
#include <localvm/qmp/protocol.hpp>

int main() { return 0; }
