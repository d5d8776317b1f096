// Benchmarks' one median: the middle value of the samples, for an even
// count the mean of the two middle ones (the upper one alone, which each
// benchmark used to take, overstates: of 6 per-round ratios, the 4th), and
// 0 for none.
#pragma once

#include <algorithm>
#include <vector>

namespace bench_stats {

inline double median(std::vector<double> v) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace bench_stats
