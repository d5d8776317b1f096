// Internal: the Boost.Process v2 headers this layer uses, with the includes
// that Boost 1.81's bp2 headers forget when BOOST_PROCESS_USE_STD_FS is set
// (they name boost::optional, remove_pointer, is_convertible and
// std::unique_ptr without including them). Include this instead of
// <boost/process/v2/...> directly.
#pragma once

#include <boost/optional.hpp>
#include <boost/type_traits.hpp>

#include <algorithm>
#include <memory>
#include <string_view>
#include <type_traits>

#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/posix/default_launcher.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/start_dir.hpp>
#include <boost/process/v2/stdio.hpp>
