// wait() and shield(): ReturnWhen modes, timeouts that neither raise nor cancel, same-tick
// completion (W5), cancellation of the waiter, and shield's one-way protection (also under
// wait_for). as_completed() is in test_wait_as_completed.cpp.
// Ports CPython's Lib/test/test_asyncio/test_tasks.py (wait, shield) and
// test_waitfor.py::WaitForShieldTests; each test names the CPython test or the rule it pins.
#include <corio/testing.hpp>

#include "task_support.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::cancelled_with;
using corio_test::fail_after;
using corio_test::value_after;

namespace {

bool same_tasks(const std::vector<Task<int>>& got, const std::vector<Task<int>>& want) {
    if (got.size() != want.size()) return false;
    for (std::size_t i = 0; i < got.size(); ++i)
        if (!(got[i] == want[i])) return false;
    return true;
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
