// The headers' own TUs are the test; linking proves the declarations exist.
#include <localvm/console/log.hpp>
#include <localvm/console/serial.hpp>
#include <localvm/console/wait.hpp>

int main() {
    auto hint = &localvm::console::attach_hint;
    auto tail = &localvm::console::read_tail;
    return hint && tail ? 0 : 1;
}
