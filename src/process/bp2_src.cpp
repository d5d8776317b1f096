// The one translation unit of the library that compiles Boost.Process v2's
// separately compiled parts (BOOST_PROCESS_V2_SEPARATE_COMPILATION is set for
// every user of process_dep, so bp2 is not header-only anywhere in localvm).
#include "bp2.hpp"

#include <boost/process/v2/src.hpp>
