// The test harness itself (corio/testing.hpp): what its assertion macros do when they fail.
// Failures are planted on purpose and caught with GoogleTest's gtest-spi.h.
#include <corio/testing.hpp>
#include <gtest/gtest-spi.h>

#include "harness_support.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace corio;
using corio_test::any_contains;
using corio_test::failures_of;
using corio_test::joined;

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

Coro<> false_fails() {
    CO_ASSERT_FALSE(1 + 1 == 2);
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
    EXPECT_FATAL_FAILURE(corio::run(eq_fails()), "1 + 1");
    EXPECT_FALSE(reached_end);
}

TEST(TestingCoAssert, FailingTrueReportsTheConditionAndReturns) {
    reached_end = false;
    EXPECT_FATAL_FAILURE(corio::run(true_fails()), "1 + 1 == 3");
    EXPECT_FALSE(reached_end);
}

// Fatal, as ASSERT_*'s failures are (the harness runs no body after one in SetUpAsync). As
// EXPECT_FALSE reports: the condition as written, true where false was expected (it
// reported "!(1 + 1 == 2)", false where true was expected).
TEST(TestingCoAssert, FailingFalseReportsTheConditionAsWrittenAndReturns) {
    reached_end = false;
    EXPECT_FATAL_FAILURE(corio::run(false_fails()), "Value of: 1 + 1 == 2\n  Actual: true\nExpected: false");
    EXPECT_FALSE(reached_end);
}

namespace {

using namespace std::chrono_literals;

// Sets CORIO_TEST_TIMEOUT for one test and puts the previous value back.
class ScopedTimeLimit {
public:
    explicit ScopedTimeLimit(const char* seconds) {
        if (const char* old = std::getenv("CORIO_TEST_TIMEOUT")) previous_ = old;
        ::setenv("CORIO_TEST_TIMEOUT", seconds, 1);
    }
    ~ScopedTimeLimit() {
        if (previous_)
            ::setenv("CORIO_TEST_TIMEOUT", previous_->c_str(), 1);
        else
            ::unsetenv("CORIO_TEST_TIMEOUT");
    }
    ScopedTimeLimit(const ScopedTimeLimit&) = delete;
    ScopedTimeLimit& operator=(const ScopedTimeLimit&) = delete;

private:
    std::optional<std::string> previous_;
};

// Keeps one callback in the ready queue for as long as the loop runs, so that the loop's close()
// drops it after the loop has started refusing other threads; its last copy then takes `delay`
// (real time) to release.
struct ReadyUntilClose {
    std::shared_ptr<int> slow;
    void operator()() const { get_running_loop().call_soon(ReadyUntilClose{slow}); }
};

std::shared_ptr<int> slow_to_release(std::chrono::milliseconds delay) {
    return std::shared_ptr<int>(new int(0), [delay](int* p) {
        std::this_thread::sleep_for(delay);
        delete p;
    });
}

}  // namespace

TEST(TestingTimeLimit, FractionalSecondsAreRead) {
    ScopedTimeLimit limit("0.25");
    EXPECT_EQ(corio::testing::test_time_limit(), std::chrono::milliseconds(250));
}

TEST(TestingTimeLimit, UnreadableValueGivesTheDefault) {
    ScopedTimeLimit limit("soon");
    EXPECT_EQ(corio::testing::test_time_limit(), std::chrono::seconds(60));
}

// 0 and inf mean no limit, as pytest-timeout's 0 does; a value past a double's range too. inf
// overflowed the conversion to milliseconds (UBSan aborted the run; else the limit was negative
// and every test failed at once).
TEST(TestingTimeLimit, ZeroOrInfinityMeansNoLimit) {
    for (const char* value : {"0", "inf", "1e400", "1e300"}) {
        ScopedTimeLimit limit(value);
        EXPECT_EQ(corio::testing::test_time_limit(), corio::testing::no_test_time_limit) << value;
    }
    for (const char* value : {"-3", "-1e400", "nan", "0,5", "5s", "0x10"}) {  // a typo is not "0"
        ScopedTimeLimit limit(value);
        EXPECT_EQ(corio::testing::test_time_limit(), std::chrono::seconds(60)) << value;
    }
    for (const char* value : {" +5 ", "5"}) {
        ScopedTimeLimit limit(value);
        EXPECT_EQ(corio::testing::test_time_limit(), std::chrono::seconds(5)) << value;
    }
    {
        ScopedTimeLimit tiny("0.0004");  // not 0 ms, which would fail every test at once
        EXPECT_EQ(corio::testing::test_time_limit(), std::chrono::milliseconds(1));
    }
    ScopedTimeLimit limit("inf");
    auto failures = failures_of([]() -> Coro<> { co_await sleep(0s); });
    EXPECT_TRUE(failures.empty()) << joined(failures);
}

// The watchdog cancels a body that outlives the limit; the test fails, it does not hang.
TEST(TestingTimeLimit, OverrunningBodyIsCancelledAndFails) {
    ScopedTimeLimit limit("0.2");
    bool cancelled = false;
    const auto t0 = std::chrono::steady_clock::now();
    auto failures = failures_of([&cancelled]() -> Coro<> {
        try {
            auto s = sleep(30s);
            co_await std::move(s);
        } catch (const CancelledError&) {
            cancelled = true;
            throw;
        }
    });
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    EXPECT_TRUE(cancelled);
    EXPECT_TRUE(any_contains(failures, "ran longer than 0.2 s")) << joined(failures);
    EXPECT_TRUE(any_contains(failures, "time limit ran out")) << joined(failures);
}

namespace {
// Suspends twice, then waits for ever: the first run; later runs wait for ever at once.
Coro<> hangs(int* runs) {
    if ((*runs)++ == 0) {
        for (int i = 0; i < 2; ++i) {
            auto tick = sleep(0s);
            co_await std::move(tick);
        }
    }
    Event never;
    auto waiting = never.wait();
    co_await std::move(waiting);
}
}  // namespace

// A scenario that hangs under cancel_at_every_suspension: the time limit's cancel of the test's
// task came back from the scenario's task as a CancelledError, which the sweep took for its own
// cancellation of the scenario; it went on to a run that hung at a suspension the sweep never
// reaches, and the test hung for ever.
TEST(TestingTimeLimit, AHangingScenarioUnderACancelSweepStillHitsTheLimit) {
    ScopedTimeLimit limit("0.2");
    const auto t0 = std::chrono::steady_clock::now();
    int runs = 0;
    auto failures = failures_of([&runs]() -> Coro<> {
        auto scenario = [&runs] { return hangs(&runs); };
        auto nothing_to_check = []() -> Coro<> { co_return; };
        Coro<corio::testing::CancelSweep> sweeping = corio::testing::cancel_at_every_suspension(scenario, nothing_to_check);
        co_await std::move(sweeping);
    });
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    EXPECT_TRUE(any_contains(failures, "ran longer than 0.2 s")) << joined(failures);
}

// The limit running out while Runner::close() runs (here: releasing a callback that close()
// drops after the loop refuses other threads) used to end the process: the watchdog's
// call_soon_threadsafe threw "Event loop is closed" on its own thread, or reached a loop already
// destroyed. The overrun is a failure like any other.
TEST(TestingTimeLimit, OverrunWhileTheLoopClosesFailsWithoutAborting) {
    // The body and the checks must end within the limit (a loaded machine is slow), the close
    // well after it.
    ScopedTimeLimit limit("1");
    auto failures = failures_of([]() -> Coro<> {
        get_running_loop().call_soon(ReadyUntilClose{slow_to_release(2s)});
        co_return;
    });
    ASSERT_EQ(failures.size(), 1u) << joined(failures);
    EXPECT_TRUE(any_contains(failures, "ran longer than 1 s")) << joined(failures);
    EXPECT_TRUE(any_contains(failures, "closing its loop included")) << joined(failures);
}

namespace {
// A TearDownAsync that waits for ever (the event nobody sets), with or without a cancellation.
struct HangingTearDown : corio::testing::AsyncTest {
    Coro<> TearDownAsync() override {
        Event never;
        auto waiting = never.wait();
        co_await std::move(waiting);
    }
    void TestBody() override {}
};
}  // namespace

// The limit's cancel ends the body; a teardown that then waits for ever used to hang the test
// for ever (the watchdog cancelled once). The cancel is repeated until the test's task ends.
TEST(TestingTimeLimit, ATearDownThatHangsAfterTheLimitStillEndsTheTest) {
    ScopedTimeLimit limit("0.2");
    const auto t0 = std::chrono::steady_clock::now();
    HangingTearDown fixture;
    auto failures = failures_of(fixture, []() -> Coro<> {
        Event never;
        auto waiting = never.wait();
        co_await std::move(waiting);
    });
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    EXPECT_TRUE(any_contains(failures, "ran longer than 0.2 s")) << joined(failures);
}

// The first run of a sweep cancels nothing: its failure says so (it printed the "no suspension"
// marker as a suspension number, 18446744073709551615).
TEST(TestingCancelSweep, AFailureOfTheFirstRunIsNotCalledACancelledOne) {
    auto failures = failures_of([]() -> Coro<> {
        auto scenario = []() -> Coro<> {
            auto tick = sleep(0s);
            co_await std::move(tick);
            throw std::runtime_error("scenario broke");
        };
        auto nothing_to_check = []() -> Coro<> { co_return; };
        Coro<corio::testing::CancelSweep> sweeping = corio::testing::cancel_at_every_suspension(scenario, nothing_to_check);
        co_await std::move(sweeping);
    });
    EXPECT_TRUE(any_contains(failures, "the first run (not cancelled) failed: scenario broke")) << joined(failures);
    EXPECT_FALSE(any_contains(failures, "18446744073709551615")) << joined(failures);
}

namespace {
AsyncGenerator<int> counting_up(bool* cleaned_up) {
    bool closing = false;
    try {
        for (int i = 0;; ++i) co_yield i;
    } catch (const GeneratorExit&) {
        closing = true;
    }
    co_await sleep(0s);  // a cleanup that takes a tick
    *cleaned_up = true;
    if (closing) throw GeneratorExit{};
}
}  // namespace

// A generator left early (`async for ...: break`) is closed by a task of its own as it is
// dropped: the harness waits for that cleanup instead of failing the test for a task left behind.
TEST(TestingLeftTasks, AGeneratorLeftEarlyIsClosedNotReported) {
    bool cleaned_up = false;
    auto failures = failures_of([&cleaned_up]() -> Coro<> {
        AsyncGenerator<int> numbers = counting_up(&cleaned_up);
        for (;;) {
            auto taking = numbers.next();
            std::optional<int> v = co_await std::move(taking);
            if (!v || *v == 2) break;
        }
    });
    EXPECT_TRUE(failures.empty()) << joined(failures);
    EXPECT_TRUE(cleaned_up);
}

namespace {
// Re-yields `counting_up`, so that closing it drops the inner generator mid-iteration.
AsyncGenerator<int> re_yielding(bool* inner_cleaned_up) {
    AsyncGenerator<int> inner = counting_up(inner_cleaned_up);
    for (;;) {
        auto taking = inner.next();
        std::optional<int> v = co_await std::move(taking);
        if (!v) break;
        co_yield *v;
    }
}

AsyncGenerator<int> cleanup_never_ends() {
    bool closing = false;
    try {
        for (int i = 0;; ++i) co_yield i;
    } catch (const GeneratorExit&) {
        closing = true;
    }
    Event never;
    co_await never.wait();
    if (closing) throw GeneratorExit{};
}
}  // namespace

// Closing an outer generator the test left early drops the inner one, whose closer starts
// during the wait: the harness waits for that one too (it reported it as left behind).
TEST(TestingLeftTasks, NestedGeneratorsLeftEarlyAreAllClosed) {
    bool inner_cleaned_up = false;
    auto failures = failures_of([&inner_cleaned_up]() -> Coro<> {
        AsyncGenerator<int> outer = re_yielding(&inner_cleaned_up);
        auto taking = outer.next();
        std::optional<int> v = co_await std::move(taking);
        if (v != 0) throw std::logic_error("did not start");
    });
    EXPECT_TRUE(failures.empty()) << joined(failures);
    EXPECT_TRUE(inner_cleaned_up);
}

// A generator cleanup that never ends does not hang the test: the time limit ends the wait, and
// the closer is reported as left behind (the wait used to absorb the limit's cancellation).
TEST(TestingLeftTasks, AGeneratorCleanupThatNeverEndsHitsTheTimeLimit) {
    ScopedTimeLimit limit("0.2");
    auto failures = failures_of([]() -> Coro<> {
        AsyncGenerator<int> stuck = cleanup_never_ends();
        auto taking = stuck.next();
        std::optional<int> v = co_await std::move(taking);
        if (v != 0) throw std::logic_error("did not start");
    });
    EXPECT_TRUE(any_contains(failures, "ran longer than 0.2 s")) << joined(failures);
    EXPECT_TRUE(any_contains(failures, "left 1 task(s) running: asyncgen-aclose")) << joined(failures);
}

// A body within its limit reports nothing, and the watchdog is not waited for.
TEST(TestingTimeLimit, BodyWithinTheLimitPasses) {
    ScopedTimeLimit limit("30");
    const auto t0 = std::chrono::steady_clock::now();
    auto failures = failures_of([]() -> Coro<> {
        auto s = sleep(1ms);
        co_await std::move(s);
    });
    EXPECT_TRUE(failures.empty()) << joined(failures);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

namespace {
Coro<> sleeps(Clock::duration d) {
    auto s = sleep(d);
    co_await std::move(s);
}
}  // namespace

// An inner clock hands the virtual time it reached to the enclosing one: time never goes back,
// and a sleep started under the inner clock completes in the outer one's virtual time.
CORIO_TEST(TestingMockClock, InnerClockHandsItsTimeToTheEnclosingOne) {
    corio::testing::MockClock outer;
    const Clock::time_point start = outer.now();
    Task<> sleeper;
    Clock::time_point inner_end;
    {
        corio::testing::MockClock inner;
        auto hour = sleep(1h);
        co_await std::move(hour);
        sleeper = create_task(sleeps(1s));
        inner_end = get_running_loop().time();
    }
    EXPECT_GE(get_running_loop().time(), inner_end);
    EXPECT_EQ(outer.now(), inner_end);
    co_await sleeper;
    EXPECT_DOUBLE_EQ(outer.seconds_since(start), 3601.0);
}

// Destroying the outermost clock puts the loop back on the real clock, carried on from the
// virtual time reached: loop.time() does not go back, and a timer armed under the clock keeps
// its remaining delay (it used to wait the whole virtual hour, in real time).
CORIO_TEST(TestingMockClock, OutermostClockKeepsLoopTimeMonotonic) {
    Clock::time_point before_drop;
    Task<> sleeper;
    {
        corio::testing::MockClock clock;
        auto hour = sleep(1h);
        co_await std::move(hour);
        sleeper = create_task(sleeps(50ms));
        auto tick = sleep(0ms);
        co_await std::move(tick);
        before_drop = get_running_loop().time();
    }
    const double moved = std::chrono::duration<double>(get_running_loop().time() - before_drop).count();
    EXPECT_GE(moved, 0.0) << "loop.time() went back when the clock was destroyed";
    // 50 ms of the sleep are left, now in real time; 30 s is a bound for a hang (the bug waited
    // the whole virtual hour), not a timing.
    bool finished = true;
    try {
        auto waiting = wait_for(sleeper, 30s);
        co_await std::move(waiting);
    } catch (const TimeoutError&) {
        finished = false;
    }
    EXPECT_TRUE(finished) << "a 50 ms sleep armed under the clock had not finished after 30 s of real time";
}

// The comparison forms of CO_ASSERT_*: passing ones go on.
CORIO_TEST(CoAssert, ComparisonsThatHoldGoOn) {
    int two = 2;
    CO_ASSERT_NE(two, 3);
    CO_ASSERT_LT(two, 3);
    CO_ASSERT_LE(two, 2);
    CO_ASSERT_GT(two, 1);
    CO_ASSERT_GE(two, 2);
    CO_ASSERT_TRUE(two == 2);
}

// What the harness prints of a report and of what a test threw: where the task was made and its
// await chain, as the default handler prints them (a stuck handler's report said only "still
// running"), and an ExceptionGroup's members (its what() alone hid the error).
TEST(HarnessReportText, AReportShowsWhereAndTheAwaitChain) {
    ExceptionContext c;
    c.message = "Task Task-4 is still running";
    c.task_name = "Task-4";
    c.location = std::source_location::current();
    c.call_graph = "  * Task Task-4\n    | handler()";
    const std::string text = corio::testing::format_report(c);
    EXPECT_NE(text.find("created at: "), std::string::npos) << text;
    EXPECT_NE(text.find(c.location->file_name() + (":" + std::to_string(c.location->line()))), std::string::npos) << text;
    EXPECT_NE(text.find("| handler()"), std::string::npos) << text;
}

TEST(HarnessReportText, AThrownExceptionGroupShowsItsMembers) {
    ExceptionGroup group("unhandled errors in a TaskGroup", {std::make_exception_ptr(std::runtime_error("read: reset"))});
    const std::string text = corio::detail::thrown_text(std::make_exception_ptr(group));
    EXPECT_NE(text.find("[1] read: reset"), std::string::npos) << text;
    EXPECT_NE(text.find("corio::ExceptionGroup"), std::string::npos) << text;
}
