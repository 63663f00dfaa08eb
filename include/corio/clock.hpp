// Time in corio: a monotonic clock, std::chrono durations, and deadlines as time points.
#pragma once

#include <chrono>

namespace corio {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace detail {
// now + delay, saturated: a delay too long to represent (Clock::duration::max() for "no limit",
// as asyncio takes math.inf) is a deadline that never comes, not one that wrapped into the past.
constexpr Clock::time_point deadline_after(Clock::time_point now, Clock::duration delay) noexcept {
    const Clock::duration since = now.time_since_epoch();
    if (delay > Clock::duration::zero() && since > Clock::duration::max() - delay) return Clock::time_point::max();
    if (delay < Clock::duration::zero() && since < Clock::duration::min() - delay) return Clock::time_point::min();
    return now + delay;
}
}  // namespace detail

}  // namespace corio
