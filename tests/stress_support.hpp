// What the stress and soak suites share: their scale (CORIO_STRESS_SCALE: 1 is the short CI
// version, 10 the long one), the figures they report, and process-level counters.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

namespace corio_stress {

inline double stress_scale() {
    if (const char* s = std::getenv("CORIO_STRESS_SCALE"); s && *s) {
        double v = std::atof(s);
        if (v > 0) return v;
    }
    return 1.0;
}

// The long runs (CORIO_STRESS_SCALE > 1) outlast the harness's default 60 s per test: unless
// CORIO_TEST_TIMEOUT says otherwise, give them time in proportion (set before any test starts).
[[maybe_unused]] inline const bool kTimeLimitScaled = [] {
    const char* limit = std::getenv("CORIO_TEST_TIMEOUT");
    if (stress_scale() > 1 && !(limit && *limit))
        ::setenv("CORIO_TEST_TIMEOUT", std::to_string(static_cast<long>(120 * stress_scale())).c_str(), 1);
    return true;
}();

// A figure of the run: in the test report (RecordProperty) and on stdout for scripts.
inline void figure(const std::string& name, double value) {
    std::ostringstream text;
    text << std::fixed << std::setprecision(value == double(static_cast<long long>(value)) ? 0 : 3) << value;
    ::testing::Test::RecordProperty(name, text.str());
    std::cout << "FIGURE " << name << "=" << text.str() << std::endl;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Open file descriptors of this process.
inline int fd_count() {
    int n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') ++n;
        ::closedir(d);
        --n;  // the directory's own fd
    }
    return n;
}

}  // namespace corio_stress
