// Time in corio: a monotonic clock, std::chrono durations, and deadlines as time points.
#pragma once

#include <chrono>

namespace corio {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

}  // namespace corio
