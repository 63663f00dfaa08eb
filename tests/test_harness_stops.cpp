// When the harness stops (corio/testing.hpp): a GTEST_SKIP() in SetUpAsync skips the body, as
// GoogleTest's set-up does; a MockClock kept in a fixture outlives the test's loop harmlessly;
// Ctrl-C stops the whole test run, not one test; a loop that cannot close (a task left behind
// swallows every cancellation) ends the run with a message instead of hanging it for ever. The
// last two end the process, so they run in a forked child.
#include <corio/testing.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "child_support.hpp"
#include "harness_support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

void skip_the_test() { GTEST_SKIP() << "nothing to test here"; }

struct SkipsInSetUp : corio::testing::AsyncTest {
    Coro<> SetUpAsync() override {
        auto tick = sleep(0s);
        co_await std::move(tick);
        skip_the_test();
    }
};

// pytest's clock fixture: made in SetUpAsync (the constructor has no running loop), it is
// destroyed with the fixture, after the test's loop has closed and gone.
struct KeepsAClock : corio::testing::AsyncTest {
    Coro<> SetUpAsync() override {
        clock.emplace();
        co_return;
    }
    std::optional<corio::testing::MockClock> clock;
};

Coro<> sleeps_until_interrupted() {
    ::raise(SIGINT);  // as Ctrl-C: the test's runner cancels the test, then says KeyboardInterrupt
    auto s = sleep(1h);
    co_await std::move(s);
}

Coro<> swallows_every_cancellation() {
    for (;;) {
        try {
            auto s = sleep(100ms);
            co_await std::move(s);
        } catch (const CancelledError&) {
        }
    }
}

AsyncGenerator<int> interrupted_in_its_cleanup() {
    try {
        co_yield 1;
        co_yield 2;
    } catch (...) {
        ::raise(SIGINT);  // Ctrl-C while the test's loop shuts down (and closes this generator)
        throw;
    }
}

// Keeps a generator past the body: the loop's shutdown closes it.
struct KeepsAGenerator : corio::testing::AsyncTest {
    void TestBody() override {}
    std::optional<AsyncGenerator<int>> generator;
};

}  // namespace

// GoogleTest runs no body after a fatal failure or a skip in SetUp(): the body ran, on a
// half-made fixture, and the skipped test was then marked failed by what the body did.
CORIO_TEST_F(SkipsInSetUp, GtestSkipInSetUpAsyncSkipsTheBody) {
    ADD_FAILURE() << "the body ran after SetUpAsync skipped the test";
    co_return;
}

// The clock's destructor reached into the freed loop (heap-use-after-free under ASan).
CORIO_TEST_F(KeepsAClock, AMockClockInAFixtureOutlivesTheLoop) {
    const Clock::time_point start = clock->now();
    auto s = sleep(1h);
    co_await std::move(s);
    EXPECT_GE(clock->seconds_since(start), 3600.0);
}

// Each test has a runner of its own, so Ctrl-C failed one test and the run went on with the
// next (and SIGTERM from a CI time limit could not stop a long suite).
TEST(HarnessStops, CtrlCStopsTheWholeTestRun) {
    corio_test::ChildOutcome end = corio_test::in_child([](int fd) {
        ::dup2(fd, STDERR_FILENO);  // the harness's last words
        auto failures = corio_test::failures_of([]() -> Coro<> { return sleeps_until_interrupted(); });
        std::fprintf(stderr, "the run went on after %zu failure(s)\n", failures.size());
    });
    ASSERT_TRUE(end.finished) << end.output;
    ASSERT_TRUE(WIFSIGNALED(end.status)) << end.output;
    EXPECT_EQ(WTERMSIG(end.status), SIGINT);
    EXPECT_NE(end.output.find("interrupted by SIGINT: the test run stops"), std::string::npos) << end.output;
}

// A task that swallows every cancellation hung Runner::close() for ever, after the time limit
// had cancelled the test: the limit is there to end the test.
TEST(HarnessStops, ALoopThatCannotCloseEndsTheRunWithAMessage) {
    corio_test::ChildOutcome end = corio_test::in_child([](int fd) {
        ::dup2(fd, STDERR_FILENO);  // the harness's last words
        ::setenv("CORIO_TEST_TIMEOUT", "0.2", 1);
        auto failures = corio_test::failures_of([]() -> Coro<> {
            (void)create_task(swallows_every_cancellation(), "stubborn");
            auto s = sleep(1h);
            co_await std::move(s);
        });
        std::fprintf(stderr, "the run went on after %zu failure(s)\n", failures.size());
    });
    ASSERT_TRUE(end.finished) << end.output;
    ASSERT_TRUE(WIFSIGNALED(end.status)) << end.output;
    EXPECT_EQ(WTERMSIG(end.status), SIGABRT);
    EXPECT_NE(end.output.find("a task left behind swallows every cancellation"), std::string::npos)
        << end.output;
}

// Ctrl-C during the shutdown of the test's loop: Runner::close() throws KeyboardInterrupt,
// which escaped the harness (GoogleTest: "unknown C++ exception") and the run went on.
TEST(HarnessStops, CtrlCWhileTheTestsLoopClosesStopsTheRunToo) {
    corio_test::ChildOutcome end = corio_test::in_child([](int fd) {
        ::dup2(fd, STDERR_FILENO);
        KeepsAGenerator fixture;
        auto failures = corio_test::failures_of(fixture, [&fixture]() -> Coro<> {
            fixture.generator.emplace(interrupted_in_its_cleanup());
            auto first = fixture.generator->next();
            (void)co_await std::move(first);
        });
        std::fprintf(stderr, "the run went on after %zu failure(s)\n", failures.size());
    });
    ASSERT_TRUE(end.finished) << end.output;
    ASSERT_TRUE(WIFSIGNALED(end.status)) << end.output;
    EXPECT_EQ(WTERMSIG(end.status), SIGINT);
    EXPECT_NE(end.output.find("interrupted by SIGINT: the test run stops"), std::string::npos) << end.output;
}

// A KeyboardInterrupt the test throws itself, with no signal, is a failure like any other: it
// does not end the run (a bug in what the test exercises must not look like Ctrl-C).
TEST(HarnessStops, AKeyboardInterruptTheTestThrowsIsAnOrdinaryFailure) {
    corio_test::ChildOutcome end = corio_test::in_child([](int fd) {
        auto failures = corio_test::failures_of([]() -> Coro<> {
            auto tick = sleep(0s);
            co_await std::move(tick);
            throw KeyboardInterrupt();
        });
        corio_test::say(fd, corio_test::joined(failures));
    });
    ASSERT_TRUE(end.finished) << end.output;
    ASSERT_TRUE(WIFEXITED(end.status)) << end.output;
    EXPECT_EQ(WEXITSTATUS(end.status), 0);
    EXPECT_NE(end.output.find("the test threw: KeyboardInterrupt"), std::string::npos) << end.output;
}
