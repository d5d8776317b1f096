// Benchmarks' command-line numbers: a word that is not a whole number in
// range ends the program with a message naming it (exit status 2), instead
// of atoi's silent 0 (`bench_scale --help` ran with N = 0 and printed
// figures of nothing).
#pragma once

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>

namespace bench_args {

/// `text` as a whole number in [min, max]; otherwise prints
/// "PROGRAM: WHAT must be a whole number from MIN to MAX, not 'TEXT'" to
/// stderr and exits 2.
inline int number(const char* program, const char* text, const char* what, int min,
                  int max = INT_MAX) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(text, &end, 10);
    if (end == text || *end || errno == ERANGE || v < min || v > max) {
        std::fprintf(stderr, "%s: %s must be a whole number from %d to %d, not '%s'\n", program,
                     what, min, max, text);
        std::exit(2);
    }
    return static_cast<int>(v);
}

} // namespace bench_args
