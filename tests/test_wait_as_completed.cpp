// as_completed(): completion order, a task given twice, timeouts (counted from the call, one
// TimeoutError per remaining task, then the end), coroutines scheduled before the first next(),
// resuming after break, failures thrown from next(), next_task(), a concurrent next() refused,
// and a dropped iterator letting go of its tasks and its timer.
// Ports CPython's Lib/test/test_asyncio/test_tasks.py (as_completed); each test names the
// CPython test or the rule it pins.
#include <corio/testing.hpp>

#include "task_support.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::fail_after;
using corio_test::value_after;

// ---------------------------------------------------------------------------------------------
// as_completed (AC1 - AC4)
// ---------------------------------------------------------------------------------------------

// AC1 / test_tasks.py::BaseTaskTests::test_as_completed: results in completion order, for Coros
// and for Tasks.
CORIO_TEST(AsCompleted, YieldsResultsInCompletionOrder) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(3s, 3));
    coros.push_back(value_after(1s, 1));
    coros.push_back(value_after(2s, 2));
    auto gen = as_completed(std::move(coros));
    std::vector<int> order;
    std::vector<double> at;
    while (auto v = co_await gen.next()) {
        order.push_back(*v);
        at.push_back(clock.seconds_since(t0));
    }
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(at, (std::vector<double>{1.0, 2.0, 3.0}));  // each as soon as it is done

    std::vector<Task<int>> tasks{create_task(value_after(2s, 20)), create_task(value_after(1s, 10))};
    auto gen2 = as_completed(tasks);
    std::vector<int> order2;
    while (auto v = co_await gen2.next()) order2.push_back(*v);
    EXPECT_EQ(order2, (std::vector<int>{10, 20}));
}

// AC1 / test_tasks.py::BaseTaskTests::test_as_completed_duplicate_coroutines and test_wait's
// set semantics: a task given twice is waited for, and reported, once.
CORIO_TEST(AsCompleted, ATaskGivenTwiceYieldsOnce) {
    corio::testing::MockClock clock;
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(value_after(2s, 2));
    std::vector<Task<int>> tasks{a, b, a};
    auto gen = as_completed(tasks);
    std::vector<int> order;
    while (auto v = co_await gen.next()) order.push_back(*v);
    EXPECT_EQ(order, (std::vector<int>{1, 2}));

    Task<int> c = create_task(value_after(1s, 3));
    std::vector<Task<int>> twice{c, c};
    auto waited = wait(twice);
    auto [done, pending] = co_await std::move(waited);
    EXPECT_EQ(done.size(), 1u);
    EXPECT_TRUE(pending.empty());
}

// AC3 / test_tasks.py::BaseTaskTests::test_as_completed_with_timeout: after the timeout next()
// throws TimeoutError, and the remaining tasks are not cancelled.
CORIO_TEST(AsCompleted, TimeoutThrowsFromNextAndLeavesTheRestRunning) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(value_after(10s, 2));
    std::vector<Task<int>> both{a, b};
    auto gen = as_completed(both, 5s);
    auto first = co_await gen.next();
    CO_ASSERT_TRUE(first.has_value());
    EXPECT_EQ(*first, 1);
    bool timed_out = false;
    try {
        auto second = co_await gen.next();
        (void)second;
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(clock.seconds_since(t0), 5.0);
    EXPECT_FALSE(b.done());
    EXPECT_FALSE(b.cancelled());
    int v = co_await b;
    EXPECT_EQ(v, 2);
    // One TimeoutError for each task that was not returned (here one, given), then the end: b,
    // done since, is not returned.
    auto after = co_await gen.next();
    EXPECT_FALSE(after.has_value());
}

// asyncio's as_completed starts its timer and schedules the coroutines at the call
// (_AsCompletedIterator.__init__), not at the first next().
CORIO_TEST(AsCompleted, TimeoutCountsFromTheCall) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(4s, 4));
    auto gen = as_completed(std::move(coros), 5s);
    co_await sleep(3s);
    bool timed_out = false;
    try {
        auto v = co_await gen.next();
        (void)v;
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    // The coroutine started at the call, so it finishes at 4 s, before the 5 s timeout.
    EXPECT_FALSE(timed_out);
    EXPECT_EQ(clock.seconds_since(t0), 4.0);
    auto end = co_await gen.next();
    EXPECT_FALSE(end.has_value());

    Task<int> slow = create_task(value_after(10s, 10));
    std::vector<Task<int>> just_slow(1, slow);
    auto gen2 = as_completed(just_slow, 5s);
    co_await sleep(3s);
    const auto t1 = clock.now();
    try {
        auto v = co_await gen2.next();
        (void)v;
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(clock.seconds_since(t1), 2.0);  // 5 s after the call, not after next()
    slow.cancel();
    auto cancelled = co_await corio::wait(just_slow);
    EXPECT_EQ(cancelled.done.size(), 1u);
}

CORIO_TEST(AsCompleted, CoroutinesRunBeforeTheFirstNext) {
    int started = 0;
    auto mark = [](int& n) -> Coro<int> {
        ++n;
        co_return n;
    };
    std::vector<Coro<int>> coros;
    coros.push_back(mark(started));
    coros.push_back(mark(started));
    auto gen = as_completed(std::move(coros));
    co_await sleep(0s);
    EXPECT_EQ(started, 2);
    int seen = 0;
    while (auto v = co_await gen.next()) ++seen;
    EXPECT_EQ(seen, 2);
}

// AC3 / test_tasks.py::BaseTaskTests::test_as_completed_with_unused_timeout.
CORIO_TEST(AsCompleted, UnusedTimeoutChangesNothing) {
    corio::testing::MockClock clock;
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(2s, 2));
    coros.push_back(value_after(1s, 1));
    auto gen = as_completed(std::move(coros), 10s);
    std::vector<int> order;
    while (auto v = co_await gen.next()) order.push_back(*v);
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

namespace {
// Every item of `items`, carrying on after each failure: the values, the failures' messages,
// and "timeout" for a TimeoutError.
Coro<std::vector<std::string>> outcomes_of(AsCompleted<int> items) {
    std::vector<std::string> seen;
    for (;;) {
        try {
            Coro<std::optional<int>> next = items.next();
            std::optional<int> v = co_await std::move(next);
            if (!v) break;
            seen.push_back(std::to_string(*v));
        } catch (const TimeoutError&) {
            seen.push_back("timeout");
        } catch (const std::runtime_error& e) {
            seen.push_back(e.what());
        }
    }
    co_return seen;
}
}  // namespace

// AC3: on timeout every remaining item raises TimeoutError, once each; a loop that carries on
// after each failure ends.
CORIO_TEST(AsCompleted, EachRemainingTaskGetsOneTimeoutErrorThenTheEnd) {
    corio::testing::MockClock clock;
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(1s, 1));
    coros.push_back(value_after(10s, 2));
    coros.push_back(value_after(20s, 3));
    auto items = as_completed(std::move(coros), 5s);
    Coro<std::vector<std::string>> collecting = outcomes_of(std::move(items));
    std::vector<std::string> seen = co_await std::move(collecting);
    EXPECT_EQ(seen, (std::vector<std::string>{"1", "timeout", "timeout"}));
    co_await sleep(30s);  // the two left run on, uncancelled, and end
}

// AC4 / test_tasks.py::BaseTaskTests::test_as_completed_resume_iterator: the iteration can go on
// after a break.
CORIO_TEST(AsCompleted, ResumesAfterBreak) {
    corio::testing::MockClock clock;
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(3s, 3));
    coros.push_back(value_after(1s, 1));
    coros.push_back(value_after(2s, 2));
    auto gen = as_completed(std::move(coros));
    std::vector<int> order;
    while (auto v = co_await gen.next()) {
        order.push_back(*v);
        break;
    }
    EXPECT_EQ(order, (std::vector<int>{1}));
    while (auto v = co_await gen.next()) order.push_back(*v);
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

// API.md: a failure is thrown from the next() that reaches it; the other tasks are not cancelled.
CORIO_TEST(AsCompleted, FailureIsThrownFromNext) {
    corio::testing::MockClock clock;
    Task<int> bad = create_task(fail_after(1s, "bad"));
    Task<int> good = create_task(value_after(2s, 2));
    std::vector<Task<int>> both{good, bad};
    auto gen = as_completed(both);
    bool threw = false;
    try {
        auto v = co_await gen.next();
        (void)v;
    } catch (const std::runtime_error& e) {
        threw = std::string(e.what()) == "bad";
    }
    EXPECT_TRUE(threw);
    EXPECT_FALSE(good.cancelled());
    int v = co_await good;
    EXPECT_EQ(v, 2);
}

// AC1: each item raises its own exception and the iteration goes on: a failure loses none of
// the results after it (an async generator would have ended at the throw).
CORIO_TEST(AsCompleted, IterationGoesOnAfterAFailure) {
    corio::testing::MockClock clock;
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(1s, 1));
    coros.push_back(fail_after(2s, "second failed"));
    coros.push_back(value_after(3s, 3));
    coros.push_back(fail_after(4s, "fourth failed"));
    auto items = as_completed(std::move(coros));
    Coro<std::vector<std::string>> collecting = outcomes_of(std::move(items));
    std::vector<std::string> seen = co_await std::move(collecting);
    EXPECT_EQ(seen, (std::vector<std::string>{"1", "second failed", "3", "fourth failed"}));
}

// AC1, asyncio's async-iterator form: the original tasks, done, in completion order.
CORIO_TEST(AsCompleted, NextTaskReturnsTheTasksThemselves) {
    corio::testing::MockClock clock;
    Task<int> slow = create_task(value_after(2s, 2));
    Task<int> failing = create_task(fail_after(1s, "failed"));
    std::vector<Task<int>> tasks{slow, failing};
    auto items = as_completed(tasks);
    Coro<std::optional<Task<int>>> taking = items.next_task();
    std::optional<Task<int>> first = co_await std::move(taking);
    CO_ASSERT_TRUE(first.has_value());
    EXPECT_TRUE(*first == failing);
    EXPECT_TRUE(first->done());
    Coro<std::optional<Task<int>>> taking_again = items.next_task();
    std::optional<Task<int>> second = co_await std::move(taking_again);
    CO_ASSERT_TRUE(second.has_value());
    EXPECT_TRUE(*second == slow);
    EXPECT_EQ(second->result(), 2);
    Coro<std::optional<Task<int>>> taking_last = items.next_task();
    std::optional<Task<int>> end = co_await std::move(taking_last);
    EXPECT_FALSE(end.has_value());
    EXPECT_THROW(first->result(), std::runtime_error);
}

// Two next() at once on one iterator: the second is refused (asyncio's anext() "already running").
CORIO_TEST(AsCompleted, ConcurrentNextIsRefused) {
    corio::testing::MockClock clock;
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(1s, 1));
    auto items = as_completed(std::move(coros));
    Task<std::optional<int>> first = create_task(items.next());
    co_await sleep(0s);
    bool refused = false;
    try {
        Coro<std::optional<int>> second = items.next();
        (void)co_await std::move(second);
    } catch (const std::logic_error&) {
        refused = true;
    }
    EXPECT_TRUE(refused);
    std::optional<int> v = co_await first;
    EXPECT_EQ(v, std::optional<int>(1));
}

// AC3: the deadline is a timer armed at the call (asyncio's _on_timeout). A task that finished
// after it is a TimeoutError, not a result, even though no next() was waiting at the deadline.
CORIO_TEST(AsCompleted, DeadlinePassesWhileNoCallWaits) {
    corio::testing::MockClock clock;
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(1s, 1));
    coros.push_back(value_after(10s, 2));
    auto items = as_completed(std::move(coros), 5s);
    co_await sleep(20s);  // both are done by now; only the first before the deadline
    Coro<std::vector<std::string>> collecting = outcomes_of(std::move(items));
    std::vector<std::string> seen = co_await std::move(collecting);
    EXPECT_EQ(seen, (std::vector<std::string>{"1", "timeout"}));
}

// AC1: tasks that complete while nobody iterates come out in the order they completed, not in
// the order they were given (asyncio queues them from their done-callbacks).
CORIO_TEST(AsCompleted, CompletionOrderIsKeptWhileNobodyIterates) {
    corio::testing::MockClock clock;
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(3s, 3));
    coros.push_back(value_after(1s, 1));
    coros.push_back(value_after(2s, 2));
    auto items = as_completed(std::move(coros));
    co_await sleep(5s);
    Coro<std::vector<std::string>> collecting = outcomes_of(std::move(items));
    std::vector<std::string> seen = co_await std::move(collecting);
    EXPECT_EQ(seen, (std::vector<std::string>{"1", "2", "3"}));
}

// An iterator dropped before its tasks finish, and before its deadline, leaves them and the
// loop alone: the tasks complete later without it (ASan: no use of the freed iterator).
CORIO_TEST(AsCompleted, DroppedIteratorLetsGoOfItsTasksAndTimer) {
    corio::testing::MockClock clock;
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(value_after(2s, 2));
    {
        std::vector<Task<int>> both{a, b};
        auto items = as_completed(both, 5s);
        co_await sleep(0s);
    }
    co_await sleep(10s);
    EXPECT_EQ(a.result(), 1);
    EXPECT_EQ(b.result(), 2);
    // Dropped half-way: one returned, one still owed.
    Task<int> c = create_task(value_after(1s, 3));
    Task<int> d = create_task(value_after(3s, 4));
    {
        std::vector<Task<int>> both{c, d};
        auto items = as_completed(both, 5s);
        std::optional<int> first = co_await items.next();
        EXPECT_EQ(first, std::optional<int>(3));
    }
    co_await sleep(10s);
    EXPECT_EQ(d.result(), 4);
}

// Copies share one iteration: what one copy returned, the other does not return again.
CORIO_TEST(AsCompleted, CopiesShareTheIteration) {
    corio::testing::MockClock clock;
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(1s, 1));
    coros.push_back(value_after(2s, 2));
    auto items = as_completed(std::move(coros));
    auto copy = items;
    std::optional<int> first = co_await items.next();
    std::optional<int> second = co_await copy.next();
    std::optional<int> end = co_await items.next();
    EXPECT_EQ(first, std::optional<int>(1));
    EXPECT_EQ(second, std::optional<int>(2));
    EXPECT_FALSE(end.has_value());
}
