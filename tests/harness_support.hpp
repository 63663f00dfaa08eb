// Helpers the suites that test the harness itself share (tests/test_testing.cpp,
// test_harness_checks.cpp): run a body under run_async_test with its failures intercepted
// (gtest-spi), and look through the messages.
#pragma once

#include <corio/testing.hpp>
#include <gtest/gtest-spi.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace corio_test {

struct PlainFixture : corio::testing::AsyncTest {
    void TestBody() override {}
};

// run_async_test's failures for `fixture` and `body`, intercepted: an overrun reports more than
// one, which EXPECT_NONFATAL_FAILURE (exactly one) cannot take.
inline std::vector<std::string> failures_of(corio::testing::AsyncTest& fixture, std::function<corio::Coro<>()> body) {
    ::testing::TestPartResultArray results;
    {
        ::testing::ScopedFakeTestPartResultReporter reporter(
            ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
        corio::testing::run_async_test(fixture, std::move(body));
    }
    std::vector<std::string> out;
    for (int i = 0; i < results.size(); ++i) out.emplace_back(results.GetTestPartResult(i).message());
    return out;
}

inline std::vector<std::string> failures_of(std::function<corio::Coro<>()> body) {
    PlainFixture fixture;
    return failures_of(fixture, std::move(body));
}

inline bool any_contains(const std::vector<std::string>& messages, const std::string& part) {
    return std::any_of(messages.begin(), messages.end(),
                       [&](const std::string& m) { return m.find(part) != std::string::npos; });
}

inline std::string joined(const std::vector<std::string>& messages) {
    std::string out;
    for (auto& m : messages) out += m + "\n";
    return out;
}

}  // namespace corio_test
