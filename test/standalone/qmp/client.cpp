// The header compiles on its own (included first).
#include <localvm/qmp/client.hpp>

int main() { return 0; }
