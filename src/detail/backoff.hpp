// Internal: the one capped exponential backoff of localvm, for every retry
// loop (a lock held by another process, a socket not yet listening, a guest
// port or ssh login not yet up). Pure: no clock, no timer; the caller waits.
#pragma once

#include <algorithm>
#include <chrono>

namespace localvm::detail {

/// Pauses that double from `first` up to `cap`: first, 2*first, 4*first,
/// ..., cap, cap, ... A `first` above `cap` is still the first pause (the
/// caller asked for it); every later one is `cap`. A `first` of zero or less
/// gives zero pauses (retry at once) for good; a negative `cap` counts as
/// zero. Doubling never overflows: a pause past half the cap goes to the
/// cap. Never throws.
class backoff {
public:
    using duration = std::chrono::steady_clock::duration;

    constexpr backoff(duration first, duration cap) noexcept
        : first_(std::max(first, duration::zero()))
        , cap_(std::max(cap, duration::zero()))
        , next_(first_) {}

    /// The pause to take now; the one after it is twice as long, up to the cap.
    constexpr duration next() noexcept {
        const duration now = next_;
        next_ = next_ > cap_ / 2 ? cap_ : next_ * 2;
        return now;
    }

    /// `next()`, but no longer than `left` (the time to a deadline; zero
    /// when it passed): the backoff still advances.
    constexpr duration next(duration left) noexcept {
        return std::max(std::min(next(), left), duration::zero());
    }

    /// What `next()` would return, without advancing.
    constexpr duration peek() const noexcept { return next_; }

    /// Starts over at `first` (after progress: the next failure is new).
    constexpr void reset() noexcept { next_ = first_; }

private:
    duration first_;
    duration cap_;
    duration next_;
};

} // namespace localvm::detail
