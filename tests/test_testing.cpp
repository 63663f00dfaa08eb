// The test harness itself (corio/testing.hpp): what its assertion macros do when they fail.
// Failures are planted on purpose and caught with GoogleTest's gtest-spi.h.
#include <corio/testing.hpp>
#include <gtest/gtest-spi.h>

using namespace corio;

namespace {

bool reached_end = false;

Coro<> earlier_expect_fails_then_eq_passes() {
    EXPECT_TRUE(false) << "planted earlier failure";
    CO_ASSERT_EQ(1 + 1, 2);
    reached_end = true;
}

Coro<> eq_fails() {
    CO_ASSERT_EQ(1 + 1, 3);
    reached_end = true;
}

Coro<> true_fails() {
    CO_ASSERT_TRUE(1 + 1 == 3);
    reached_end = true;
}

}  // namespace

// A CO_ASSERT_EQ that holds goes on, even when an earlier EXPECT has failed. (Under gtest-spi the
// planted failure is intercepted, so this cannot show the old macro's fault, which asked the
// test whether it had failed at all; the next test shows that it depended on that.)
TEST(TestingCoAssert, EqReturnsOnItsOwnFailureOnly) {
    reached_end = false;
    EXPECT_NONFATAL_FAILURE(corio::run(earlier_expect_fails_then_eq_passes()), "planted earlier failure");
    EXPECT_TRUE(reached_end);
}

TEST(TestingCoAssert, FailingEqReportsBothSidesAndReturns) {
    reached_end = false;
    EXPECT_NONFATAL_FAILURE(corio::run(eq_fails()), "1 + 1");
    EXPECT_FALSE(reached_end);
}

TEST(TestingCoAssert, FailingTrueReportsTheConditionAndReturns) {
    reached_end = false;
    EXPECT_NONFATAL_FAILURE(corio::run(true_fails()), "1 + 1 == 3");
    EXPECT_FALSE(reached_end);
}
