#include <localvm/console/log.hpp>
#include <localvm/console/log.hpp> // include guard works
