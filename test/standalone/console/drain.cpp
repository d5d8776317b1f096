#include <localvm/console/drain.hpp>
#include <localvm/console/drain.hpp> // include guard works
