// All of Boost.JSON's compiled part, as its documentation describes for a
// build without the separately compiled library.
#include <boost/json/src.hpp>
