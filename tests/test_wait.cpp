// wait(), as_completed() and shield(): ReturnWhen modes, timeouts that neither raise nor cancel,
// same-tick completion (W5), cancellation of the waiter, completion order, resuming after break,
// and shield's one-way protection (also under wait_for).
// Ports CPython's Lib/test/test_asyncio/test_tasks.py (wait, as_completed, shield) and
// test_waitfor.py::WaitForShieldTests; each test names the CPython test or the rule it pins.
#include <corio/testing.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

Coro<int> value_after(Clock::duration d, int v) {
    co_await sleep(d);
    co_return v;
}

Coro<int> fail_after(Clock::duration d, std::string what) {
    co_await sleep(d);
    throw std::runtime_error(what);
}

bool same_tasks(const std::vector<Task<int>>& got, const std::vector<Task<int>>& want) {
    if (got.size() != want.size()) return false;
    for (std::size_t i = 0; i < got.size(); ++i)
        if (!(got[i] == want[i])) return false;
    return true;
}

// Awaits `aw`; the CancelledError's message, or nullopt when it did not throw CancelledError.
template <class Aw>
Coro<std::optional<std::string>> cancelled_with(Aw aw) {
    try {
        co_await std::move(aw);
    } catch (const CancelledError& e) {
        co_return std::string(e.what());
    }
    co_return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// wait (W1 - W5)
// ---------------------------------------------------------------------------------------------

// W2, W3 / test_tasks.py::BaseTaskTests::test_wait_first_completed.
CORIO_TEST(Wait, FirstCompletedReturnsAtTheFirstDone) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(value_after(2s, 2));
    Task<int> c = create_task(value_after(3s, 3));
    std::vector<Task<int>> all{c, a, b};
    auto waiting = wait(all, std::nullopt, ReturnWhen::FirstCompleted);
    auto r = co_await std::move(waiting);
    EXPECT_EQ(clock.seconds_since(t0), 1.0);
    EXPECT_TRUE(same_tasks(r.done, {a}));
    EXPECT_TRUE(same_tasks(r.pending, {c, b}));
    EXPECT_FALSE(b.done());
    EXPECT_FALSE(c.cancelled());
    int vb = co_await b;
    int vc = co_await c;
    EXPECT_EQ(vb + vc, 5);
}

// W3 / test_tasks.py::BaseTaskTests::test_wait_really_done: `done` may hold more than one task
// when several finish in the same tick.
CORIO_TEST(Wait, FirstCompletedMayReturnSeveralDone) {
    corio::testing::MockClock clock;
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(value_after(1s, 2));
    Task<int> c = create_task(value_after(3s, 3));
    std::vector<Task<int>> all{a, b, c};
    auto waiting = wait(all, std::nullopt, ReturnWhen::FirstCompleted);
    auto r = co_await std::move(waiting);
    EXPECT_TRUE(same_tasks(r.done, {a, b}));
    EXPECT_TRUE(same_tasks(r.pending, {c}));
    co_await c;
}

// W3 / test_tasks.py::BaseTaskTests::test_wait_first_exception_in_wait: returns at the first
// task that fails.
CORIO_TEST(Wait, FirstExceptionReturnsAtTheFirstFailure) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(fail_after(2s, "b failed"));
    Task<int> c = create_task(value_after(3s, 3));
    std::vector<Task<int>> all{a, b, c};
    auto waiting = wait(all, std::nullopt, ReturnWhen::FirstException);
    auto r = co_await std::move(waiting);
    EXPECT_EQ(clock.seconds_since(t0), 2.0);
    EXPECT_TRUE(same_tasks(r.done, {a, b}));
    EXPECT_TRUE(same_tasks(r.pending, {c}));
    EXPECT_THROW((void)b.result(), std::runtime_error);
    co_await c;
}

// W3 / test_tasks.py::BaseTaskTests::test_wait_first_exception: a task already failed makes
// wait() return at once.
CORIO_TEST(Wait, FirstExceptionReturnsAtOnceIfOneAlreadyFailed) {
    corio::testing::MockClock clock;
    Task<int> bad = create_task(fail_after(0s, "early"));
    Task<int> slow = create_task(value_after(10s, 1));
    co_await sleep(1s);
    CO_ASSERT_TRUE(bad.done());
    const auto t0 = clock.now();
    std::vector<Task<int>> all{slow, bad};
    auto waiting = wait(all, std::nullopt, ReturnWhen::FirstException);
    auto r = co_await std::move(waiting);
    EXPECT_EQ(clock.now(), t0);
    EXPECT_TRUE(same_tasks(r.done, {bad}));
    EXPECT_TRUE(same_tasks(r.pending, {slow}));
    EXPECT_TRUE(bad.exception() != nullptr);
    co_await slow;
}

// W3: under FirstException a cancellation is not an exception, and without any failure it
// behaves as AllCompleted.
CORIO_TEST(Wait, FirstExceptionIgnoresCancellationAndOtherwiseWaitsForAll) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    EventLoop& loop = get_running_loop();
    Task<int> a = create_task(value_after(5s, 1));
    Task<int> b = create_task(value_after(3s, 2));
    loop.call_later(1s, [a]() mutable { a.cancel(); });
    std::vector<Task<int>> all{a, b};
    auto waiting = wait(all, std::nullopt, ReturnWhen::FirstException);
    auto r = co_await std::move(waiting);
    EXPECT_EQ(clock.seconds_since(t0), 3.0);
    EXPECT_TRUE(same_tasks(r.done, {a, b}));
    EXPECT_TRUE(r.pending.empty());
    EXPECT_TRUE(a.cancelled());
}

// W2 / test_tasks.py::BaseTaskTests::test_wait: AllCompleted (the default) waits for every task.
CORIO_TEST(Wait, AllCompletedWaitsForEveryTask) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    std::vector<Coro<int>> coros;
    coros.push_back(value_after(2s, 2));
    coros.push_back(fail_after(1s, "x"));
    coros.push_back(value_after(3s, 3));
    auto waiting = wait(std::move(coros));
    auto r = co_await std::move(waiting);
    EXPECT_EQ(clock.seconds_since(t0), 3.0);
    CO_ASSERT_EQ(r.done.size(), 3u);
    EXPECT_TRUE(r.pending.empty());
    EXPECT_EQ(r.done[0].result(), 2);
    EXPECT_THROW((void)r.done[1].result(), std::runtime_error);
    EXPECT_EQ(r.done[2].result(), 3);
}

// W2 / test_tasks.py::BaseTaskTests::test_wait_with_timeout: on timeout the unfinished tasks
// are simply pending: no TimeoutError, nothing cancelled.
CORIO_TEST(Wait, TimeoutLeavesPendingAndNeitherRaisesNorCancels) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(value_after(10s, 2));
    std::vector<Task<int>> all{a, b};
    auto waiting = wait(all, 5s);
    auto r = co_await std::move(waiting);
    EXPECT_EQ(clock.seconds_since(t0), 5.0);
    EXPECT_TRUE(same_tasks(r.done, {a}));
    EXPECT_TRUE(same_tasks(r.pending, {b}));
    EXPECT_FALSE(b.done());
    EXPECT_FALSE(b.cancelled());
    EXPECT_EQ(b.cancelling(), 0);
    int v = co_await b;
    EXPECT_EQ(v, 2);
    EXPECT_EQ(clock.seconds_since(t0), 10.0);
}

// W5 / test_tasks.py::BaseTaskTests::test_wait_concurrent_complete: a task finishing in the same
// tick as the timeout (equal deadlines, its timer set first) is reported done.
CORIO_TEST(Wait, CompletionInTheSameTickAsTheTimeoutCountsAsDone) {
    corio::testing::MockClock clock;
    Task<int> a = create_task(value_after(1s, 1));
    Task<int> b = create_task(value_after(1500ms, 2));
    co_await sleep(0s);  // a and b have set their timers (as asyncio's tasks would before wait's)
    std::vector<Task<int>> all{b, a};
    auto waiting = wait(all, 1s);
    auto r = co_await std::move(waiting);
    EXPECT_TRUE(same_tasks(r.done, {a}));
    EXPECT_TRUE(same_tasks(r.pending, {b}));
    co_await b;
}

// W4 / test_tasks.py::BaseTaskTests::test_yield_wait_does_not_shield_cancel: cancelling the task
// that waits in wait() cancels that task only; the awaited tasks go on.
CORIO_TEST(Wait, CancellingTheWaiterDoesNotCancelTheAwaitedTasks) {
    corio::testing::MockClock clock;
    Task<int> a = create_task(value_after(5s, 1));
    Task<int> b = create_task(value_after(6s, 2));
    auto waiter = [](std::vector<Task<int>> ts) -> Coro<> {
        auto waiting = wait(std::move(ts));
        auto r = co_await std::move(waiting);
        (void)r;
    };
    std::vector<Task<int>> both{a, b};
    Task<> w = create_task(waiter(both));
    co_await sleep(1s);
    EXPECT_TRUE(w.cancel());
    auto outcome = cancelled_with(w);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
    EXPECT_TRUE(w.cancelled());
    EXPECT_FALSE(a.done());
    EXPECT_FALSE(b.done());
    EXPECT_EQ(a.cancelling(), 0);
    int va = co_await a;
    int vb = co_await b;
    EXPECT_EQ(va, 1);
    EXPECT_EQ(vb, 2);
}

// W1 / test_tasks.py::BaseTaskTests::test_wait_errors: an empty set is an error
// (ValueError there, std::invalid_argument here).
CORIO_TEST(Wait, EmptySetThrowsInvalidArgument) {
    std::vector<Task<int>> none;
    bool threw = false;
    try {
        auto waiting = wait(std::move(none));
        auto r = co_await std::move(waiting);
        (void)r;
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    EXPECT_TRUE(threw);
}

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

// ---------------------------------------------------------------------------------------------
// shield (SH1 - SH3, WF8)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<> shielded_inner(Future<>* waiter, int* proof) {
    co_await *waiter;
    *proof += 1;
}
Coro<> shielding_outer(Future<>* waiter, int* proof) {
    auto shielded = shield(shielded_inner(waiter, proof));
    co_await std::move(shielded);
    *proof += 100;
}
}  // namespace

// SH2 / test_tasks.py::BaseTaskTests::test_shield_effect: cancelling the outer leaves the inner
// running to completion.
CORIO_TEST(Shield, OuterCancelLeavesTheInnerRunning) {
    EventLoop& loop = get_running_loop();
    Future<> waiter(loop);
    int proof = 0;
    Task<> outer = create_task(shielding_outer(&waiter, &proof));
    co_await sleep(0s);
    EXPECT_TRUE(outer.cancel());
    auto outcome = cancelled_with(outer);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
    EXPECT_FALSE(waiter.cancelled());
    waiter.set_result();
    co_await sleep(0s);
    co_await sleep(0s);
    EXPECT_EQ(proof, 1);
}

// SH2 / test_tasks.py::BaseTaskTests::test_shield_cancel_outer, with a Task inner.
CORIO_TEST(Shield, OuterCancelDoesNotCancelTheInnerTask) {
    corio::testing::MockClock clock;
    Task<int> inner = create_task(value_after(5s, 42));
    auto outer_body = [](Task<int> t) -> Coro<int> {
        auto shielded = shield(t);
        int v = co_await std::move(shielded);
        co_return v;
    };
    Task<int> outer = create_task(outer_body(inner));
    co_await sleep(1s);
    EXPECT_TRUE(outer.cancel());
    auto outcome = cancelled_with(outer);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
    EXPECT_TRUE(outer.cancelled());
    EXPECT_FALSE(inner.done());
    EXPECT_FALSE(inner.cancelled());
    EXPECT_EQ(inner.cancelling(), 0);
    int v = co_await inner;
    EXPECT_EQ(v, 42);
}

// SH3 / test_tasks.py::BaseTaskTests::test_shield_cancel_inner: the inner cancelled makes the
// outer see CancelledError (and end cancelled).
CORIO_TEST(Shield, InnerCancelCancelsTheOuter) {
    corio::testing::MockClock clock;
    Task<int> inner = create_task(value_after(5s, 42));
    auto outer_body = [](Task<int> t) -> Coro<int> {
        auto shielded = shield(t);
        int v = co_await std::move(shielded);
        co_return v;
    };
    Task<int> outer = create_task(outer_body(inner));
    co_await sleep(1s);
    EXPECT_TRUE(inner.cancel());
    auto outcome = cancelled_with(outer);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
    EXPECT_TRUE(outer.cancelled());
    EXPECT_TRUE(inner.cancelled());
}

// SH3 / test_tasks.py::BaseTaskTests::test_shield_result, test_shield_exception; SH1
// test_shield_shortcut (an inner already done).
CORIO_TEST(Shield, ResultAndExceptionAreCopied) {
    corio::testing::MockClock clock;
    Task<int> ok = create_task(value_after(1s, 7));
    auto shielded = shield(ok);
    int v = co_await std::move(shielded);
    EXPECT_EQ(v, 7);
    auto shielded2 = shield(ok);
    int again = co_await std::move(shielded2);  // already done
    EXPECT_EQ(again, 7);

    Task<int> bad = create_task(fail_after(1s, "inner failed"));
    bool threw = false;
    try {
        auto shielded3 = shield(bad);
        int x = co_await std::move(shielded3);
        (void)x;
    } catch (const std::runtime_error& e) {
        threw = std::string(e.what()) == "inner failed";
    }
    EXPECT_TRUE(threw);

    auto shielded4 = shield(value_after(1s, 8));
    int w = co_await std::move(shielded4);  // a Coro is wrapped in a task
    EXPECT_EQ(w, 8);
}

// WF8, SH2 / test_waitfor.py::WaitForShieldTests::test_shielded_timeout: wait_for(shield(t))
// times out, and t keeps running to its result.
CORIO_TEST(Shield, WaitForShieldTimeoutKeepsTheInnerRunning) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Task<int> t = create_task(value_after(5s, 42));
    bool timed_out = false;
    try {
        auto limited = wait_for(shield(t), 1s);
        int v = co_await std::move(limited);
        (void)v;
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(clock.seconds_since(t0), 1.0);
    EXPECT_FALSE(t.done());
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(t.cancelling(), 0);
    EXPECT_EQ(current_task().cancelling(), 0);
    int v = co_await t;
    EXPECT_EQ(v, 42);
    EXPECT_EQ(clock.seconds_since(t0), 5.0);
}
