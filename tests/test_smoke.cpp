#include <corio/testing.hpp>
using namespace corio;
CORIO_TEST(Smoke, SleepsInVirtualTime) {
    corio::testing::MockClock clock;
    auto t0 = clock.now();
    co_await sleep(10s);
    EXPECT_EQ(clock.seconds_since(t0), 10.0);
}
