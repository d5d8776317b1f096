#include <localvm/console/serial.hpp>
#include <localvm/console/serial.hpp> // include guard works
