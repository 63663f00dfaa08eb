// The test harness's own promises (corio/testing.hpp): each check run_async_test makes after a
// body (a task left running, a report reaching the exception handler, a leaked fd, I/O left in
// the backend, a thread call still out) fails the test with its message; AsyncTest's
// SetUpAsync / TearDownAsync order, also after a failure; MockClock with a thread call out, and
// without a running loop. Failures are planted on purpose and intercepted with gtest-spi.h.
#include <corio/backend.hpp>
#include <corio/testing.hpp>
#include <gtest/gtest-spi.h>

#include "harness_support.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <optional>
#include <thread>
#include <vector>

using namespace corio;
using corio_test::any_contains;
using corio_test::failures_of;
using corio_test::joined;
using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

Coro<> forever(bool* cancelled) {
    try {
        auto s = sleep(24h);
        co_await std::move(s);
    } catch (const CancelledError&) {
        *cancelled = true;
        throw;
    }
}

Coro<> fails_now() {
    throw std::runtime_error("nobody retrieved this");
    co_return;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The checks after the body (testing.md:11-16, API.md:217-218)
// ---------------------------------------------------------------------------------------------

// testing.md:11-12: a task left running fails the test (named), and it is then cancelled.
TEST(HarnessChecks, ATaskLeftRunningFailsTheTestAndIsCancelled) {
    bool cancelled = false;
    auto failures = failures_of([&cancelled]() -> Coro<> {
        (void)create_task(forever(&cancelled), "straggler");
        auto tick = sleep(0s);
        co_await std::move(tick);
    });
    EXPECT_TRUE(any_contains(failures, "the test left 1 task(s) running: straggler")) << joined(failures);
    EXPECT_TRUE(cancelled);
}

// A failure of the harness's own (here: a body that threw) is reported at the test, not inside
// testing.hpp, and names the exception's type.
TEST(HarnessChecks, AFailureOfTheHarnessPointsAtTheTest) {
    ::testing::TestPartResultArray results;
    {
        ::testing::ScopedFakeTestPartResultReporter reporter(
            ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
        corio_test::PlainFixture fixture;
        corio::testing::run_async_test(fixture, []() -> Coro<> {
            throw TimeoutError();
            co_return;
        });
    }
    ASSERT_EQ(results.size(), 1);
    const ::testing::TestPartResult& failure = results.GetTestPartResult(0);
    const ::testing::TestInfo* here = ::testing::UnitTest::GetInstance()->current_test_info();
    ASSERT_NE(failure.file_name(), nullptr);
    EXPECT_STREQ(failure.file_name(), here->file());
    EXPECT_EQ(failure.line_number(), here->line());
    EXPECT_NE(std::string(failure.message()).find("(corio::TimeoutError)"), std::string::npos) << failure.message();
}

// testing.md:15-16, API.md:218: an exception never retrieved reaches the handler and fails the test.
TEST(HarnessChecks, AnUnretrievedTaskExceptionFailsTheTest) {
    auto failures = failures_of([]() -> Coro<> {
        Task<> doomed = create_task(fails_now(), "doomed");
        while (!doomed.done()) {
            auto tick = sleep(0s);
            co_await std::move(tick);
        }
    });  // the last handle goes here, unretrieved
    EXPECT_TRUE(any_contains(failures,
                             "reported by the event loop: Task exception was never retrieved [task doomed]: "
                             "nobody retrieved this"))
        << joined(failures);
}

// testing.md:15: a callback that threw reaches the handler and fails the test.
TEST(HarnessChecks, ACallbackThatThrewFailsTheTest) {
    auto failures = failures_of([]() -> Coro<> {
        get_running_loop().call_soon([] { throw std::runtime_error("callback broke"); });
        auto tick = sleep(0s);
        co_await std::move(tick);
    });
    EXPECT_TRUE(any_contains(failures, "reported by the event loop: Exception in callback: callback broke"))
        << joined(failures);
}

// testing.md:14: a file descriptor left open fails the test, named with its number.
TEST(HarnessChecks, ALeakedFdFailsTheTest) {
    int fds[2] = {-1, -1};
    auto failures = failures_of([&fds]() -> Coro<> {
        if (::pipe(fds) != 0) throw std::runtime_error("pipe() failed");
        co_return;
    });
    ASSERT_GE(fds[0], 0);
    EXPECT_TRUE(any_contains(failures, "the test leaked file descriptors:")) << joined(failures);
    EXPECT_TRUE(any_contains(failures, "leaked fd " + std::to_string(fds[0]) + " -> pipe:")) << joined(failures);
    EXPECT_TRUE(any_contains(failures, "leaked fd " + std::to_string(fds[1]) + " -> pipe:")) << joined(failures);
    ::close(fds[0]);
    ::close(fds[1]);
}

namespace {
void note_completion(IoOperation* op, long result) { *static_cast<long*>(op->user) = result; }
}  // namespace

// testing.md:13: an I/O operation the body left in the backend (no task waits on it) fails the test.
TEST(HarnessChecks, IoLeftInTheBackendFailsTheTest) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);  // made before: not a leak of the body's
    long result = 1;
    IoOperation op;  // outlives the loop: its close() completes it with -ECANCELED
    op.kind = IoOperation::Kind::PollIn;
    op.fd = fds[0];
    op.complete = &note_completion;
    op.user = &result;
    auto failures = failures_of([&op]() -> Coro<> {
        get_running_loop().backend().submit(op);  // nothing is ever written: it stays pending
        co_return;
    });
    EXPECT_TRUE(any_contains(failures, "the test left 1 I/O operation(s) in the backend")) << joined(failures);
    EXPECT_EQ(result, -ECANCELED);
    ::close(fds[0]);
    ::close(fds[1]);
}

// testing.md:13-14: a call still running on an executor's thread fails the test (after a grace period).
TEST(HarnessChecks, AThreadCallStillRunningFailsTheTest) {
    std::atomic<bool> release{false};
    ThreadPool pool(1);  // the application's: outlives the test's loop, as the call does
    auto failures = failures_of([&pool, &release]() -> Coro<> {
        (void)run_in_executor(pool, [&release] {
            const auto give_up = std::chrono::steady_clock::now() + 60s;
            while (!release.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(1ms);
        });
        co_return;
    });
    release = true;  // only now: the call was out during the whole check
    EXPECT_TRUE(any_contains(failures, "the test left 1 thread call(s) running")) << joined(failures);
    pool.shutdown();
}

// ---------------------------------------------------------------------------------------------
// AsyncTest: SetUpAsync, the body, TearDownAsync (testing.md:56-67)
// ---------------------------------------------------------------------------------------------

namespace {
struct JournaledFixture : corio::testing::AsyncTest {
    Log* log = nullptr;
    bool setup_throws = false;
    Coro<> SetUpAsync() override {
        auto tick = sleep(0s);  // a setup that awaits
        co_await std::move(tick);
        log->push_back("setup");
        if (setup_throws) throw std::runtime_error("setup broke");
    }
    Coro<> TearDownAsync() override {
        auto tick = sleep(0s);
        co_await std::move(tick);
        log->push_back("teardown");
    }
    void TestBody() override {}
};
}  // namespace

// testing.md:65-66: SetUpAsync runs before the body, TearDownAsync after it.
TEST(HarnessFixtureOrder, SetUpRunsBeforeTheBodyAndTearDownAfterIt) {
    Log log;
    JournaledFixture fixture;
    fixture.log = &log;
    auto failures = failures_of(fixture, [&log]() -> Coro<> {
        log.push_back("body");
        co_return;
    });
    EXPECT_TRUE(failures.empty()) << joined(failures);
    EXPECT_EQ(log, (Log{"setup", "body", "teardown"}));
}

// testing.md:66: TearDownAsync runs even when the body threw; the throw fails the test.
TEST(HarnessFixtureOrder, TearDownRunsAfterABodyThatThrew) {
    Log log;
    JournaledFixture fixture;
    fixture.log = &log;
    auto failures = failures_of(fixture, [&log]() -> Coro<> {
        log.push_back("body");
        throw std::runtime_error("body broke");
        co_return;
    });
    EXPECT_EQ(log, (Log{"setup", "body", "teardown"}));
    EXPECT_TRUE(any_contains(failures, "the test threw: body broke (std::runtime_error)")) << joined(failures);
}

// testing.md:66: TearDownAsync runs even when a CO_ASSERT in the body failed and returned.
TEST(HarnessFixtureOrder, TearDownRunsAfterABodyWhoseAssertionFailed) {
    Log log;
    JournaledFixture fixture;
    fixture.log = &log;
    auto failures = failures_of(fixture, [&log]() -> Coro<> {
        log.push_back("body");
        CO_ASSERT_EQ(1 + 1, 3);
        log.push_back("after the assertion");
    });
    EXPECT_EQ(log, (Log{"setup", "body", "teardown"}));
    EXPECT_TRUE(any_contains(failures, "1 + 1")) << joined(failures);
}

// testing.md:66: a SetUpAsync that threw skips the body, TearDownAsync still runs, the test fails.
TEST(HarnessFixtureOrder, TearDownRunsWhenSetUpThrewAndTheBodyDoesNot) {
    Log log;
    JournaledFixture fixture;
    fixture.log = &log;
    fixture.setup_throws = true;
    auto failures = failures_of(fixture, [&log]() -> Coro<> {
        log.push_back("body");
        co_return;
    });
    EXPECT_EQ(log, (Log{"setup", "teardown"}));
    EXPECT_TRUE(any_contains(failures, "the test threw: setup broke")) << joined(failures);
}

namespace {
struct ThrowingTearDown : corio::testing::AsyncTest {
    Coro<> TearDownAsync() override {
        auto tick = sleep(0s);
        co_await std::move(tick);
        throw std::runtime_error("teardown broke");
    }
    void TestBody() override {}
};
}  // namespace

// A TearDownAsync that throws fails the test, and the body's own failure is reported too (only
// the teardown's was: its throw skipped the rest).
TEST(HarnessFixtureOrder, ATearDownThatThrowsAfterABodyThatThrewReportsBoth) {
    ThrowingTearDown fixture;
    auto failures = failures_of(fixture, []() -> Coro<> {
        throw std::runtime_error("body broke");
        co_return;
    });
    EXPECT_TRUE(any_contains(failures, "the test threw: body broke (std::runtime_error)")) << joined(failures);
    EXPECT_TRUE(any_contains(failures, "TearDownAsync threw: teardown broke (std::runtime_error)")) << joined(failures);
}

// ... and the checks after it still run: a task left behind is reported, not cancelled quietly.
TEST(HarnessFixtureOrder, ATearDownThatThrowsDoesNotSkipTheChecks) {
    ThrowingTearDown fixture;
    bool cancelled = false;
    auto failures = failures_of(fixture, [&cancelled]() -> Coro<> {
        (void)create_task(forever(&cancelled), "straggler");
        auto tick = sleep(0s);
        co_await std::move(tick);
    });
    EXPECT_TRUE(any_contains(failures, "the test threw: teardown broke (std::runtime_error)")) << joined(failures);
    EXPECT_TRUE(any_contains(failures, "the test left 1 task(s) running: straggler")) << joined(failures);
    EXPECT_TRUE(cancelled);
}

namespace {
// A CORIO_TEST_F fixture: SetUpAsync prepares a member the body reads; TearDownAsync sees the
// body's work; GoogleTest's TearDown (after the whole run) sees TearDownAsync's.
class PreparedValueFixture : public corio::testing::AsyncTest {
protected:
    Coro<> SetUpAsync() override {
        auto tick = sleep(0s);
        co_await std::move(tick);
        prepared = 42;
    }
    Coro<> TearDownAsync() override {
        EXPECT_TRUE(body_ran) << "TearDownAsync ran before the body";
        auto tick = sleep(0s);
        co_await std::move(tick);
        torn_down = true;
    }
    void TearDown() override { EXPECT_TRUE(torn_down) << "TearDownAsync did not run"; }

    int prepared = 0;
    bool body_ran = false;
    bool torn_down = false;
};
}  // namespace

// testing.md:35-36, 65-66: via CORIO_TEST_F the body sees what SetUpAsync set; TearDownAsync follows.
CORIO_TEST_F(PreparedValueFixture, BodySeesWhatSetUpAsyncPreparedAndTearDownAsyncFollows) {
    EXPECT_EQ(prepared, 42);
    auto tick = sleep(0s);
    co_await std::move(tick);
    body_ran = true;
}

// ---------------------------------------------------------------------------------------------
// MockClock (testing.md:80-85)
// ---------------------------------------------------------------------------------------------

// testing.md:82: no jump while a thread call is out: a 50 ms real call beats wait_for's virtual 1 s.
CORIO_TEST(HarnessMockClock, WaitForAThreadCallGetsItsValueInsteadOfJumpingToTheTimeout) {
    corio::testing::MockClock clock;
    const Clock::time_point start = clock.now();
    auto call = to_thread([] {
        std::this_thread::sleep_for(50ms);
        return 7;
    });
    Coro<int> limited = wait_for(std::move(call), 1s);
    int value = co_await std::move(limited);
    EXPECT_EQ(value, 7);
    EXPECT_LT(clock.seconds_since(start), 1.0);
}

// A deadline of duration::max() never comes, under a MockClock too: with nothing else to wait
// for, the clock jumped to the end of time, so the wait timed out, and loop time stayed there.
// (The thread's wait only gives the loop its idle moment first; the outcome does not depend on it.)
CORIO_TEST(HarnessMockClock, AnEndlessDeadlineIsNeverJumpedTo) {
    corio::testing::MockClock clock;
    const Clock::time_point start = clock.now();
    EventLoop& loop = get_running_loop();
    Event set_later;
    std::thread setter([&loop, &set_later] {
        std::this_thread::sleep_for(50ms);
        loop.call_soon_threadsafe([&set_later] { set_later.set(); });
    });
    Coro<bool> waiting = wait_for(set_later.wait(), Clock::duration::max());
    std::optional<bool> woken;
    try {
        woken = co_await std::move(waiting);
    } catch (const TimeoutError&) {
    }
    setter.join();
    EXPECT_TRUE(woken.has_value());
    EXPECT_LT(clock.seconds_since(start), 1.0);
}

// testing.md:84-85: a MockClock made without a running loop throws std::logic_error.
TEST(HarnessMockClockWithoutALoop, ConstructionThrowsLogicError) {
    EXPECT_THROW(corio::testing::MockClock clock, std::logic_error);
}
