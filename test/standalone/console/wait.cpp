#include <localvm/console/wait.hpp>
#include <localvm/console/wait.hpp> // include guard works
