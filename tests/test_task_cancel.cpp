// Task cancellation: cancel() and its message, the cancelling() count and uncancel(), a task
// cancelled before its first step or cancelling itself, catching or ignoring the cancellation,
// and a task awaiting itself (asyncio-rules.md T3 - T11).
// Ports CPython's Lib/test/test_asyncio/test_tasks.py; each test names the CPython test (or the
// asyncio-rules.md rule) it pins.
#include <corio/testing.hpp>

#include "task_support.hpp"

#include <optional>
#include <string>
#include <utility>

using namespace corio;
using namespace std::chrono_literals;
using namespace corio_test;

// ---------------------------------------------------------------------------------------------
// Cancellation (T4 - T11)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<int> sleep_catching(std::string* seen_inside) {
    try {
        co_await sleep(1h);
    } catch (const CancelledError& e) {
        *seen_inside = e.what();
        throw;
    }
    co_return 0;
}
}  // namespace

// T11: a second cancel() without a message, before the first is delivered, keeps the first
// one's message (asyncio: the first already cancelled the awaited future with it). A task's or
// a timeout's own cancel() used to erase a user's message this way.
CORIO_TEST(Task, ALaterCancelWithoutAMessageKeepsTheFirstMessage) {
    corio::testing::MockClock clock;
    std::string inside;
    Task<int> t = create_task(sleep_catching(&inside));
    co_await sleep(0s);
    EXPECT_TRUE(t.cancel("first"));
    EXPECT_TRUE(t.cancel());
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_EQ(msg, std::optional<std::string>("first"));
    EXPECT_EQ(inside, "first");
}

// T11 / test_tasks.py::BaseTaskTests::test_task_cancel_message_getter,
// test_cancel_with_message_then_future_result, test_cancel_with_message_then_future_exception;
// T4: cancel() on a done task returns false.
CORIO_TEST(Task, CancelDeliversCancelledErrorWithMessage) {
    corio::testing::MockClock clock;
    std::string inside;
    Task<int> t = create_task(sleep_catching(&inside));
    co_await sleep(0s);  // suspended in sleep(1h)
    EXPECT_TRUE(t.cancel("stop it"));
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_FALSE(t.done());  // delivered when the task next runs
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_EQ(msg, std::optional<std::string>("stop it"));
    EXPECT_EQ(inside, "stop it");
    EXPECT_TRUE(t.cancelled());
    EXPECT_TRUE(t.done());
    EXPECT_FALSE(t.cancel("again"));
    try {
        (void)t.result();
        ADD_FAILURE() << "result() of a cancelled task did not throw";
    } catch (const CancelledError& e) {
        EXPECT_STREQ(e.what(), "stop it");
    }
    try {
        (void)t.exception();
        ADD_FAILURE() << "exception() of a cancelled task did not throw";
    } catch (const CancelledError& e) {
        EXPECT_STREQ(e.what(), "stop it");
    }
}

// T4 / test_tasks.py::BaseTaskTests::test_cancelling: cancel() on a pending task returns true
// every time and counts the requests.
CORIO_TEST(Task, CancelTwiceReturnsTrueAndCountsRequests) {
    corio::testing::MockClock clock;
    Task<int> t = create_task(value_after(10s, 1));
    EXPECT_EQ(t.cancelling(), 0);
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 2);
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
    EXPECT_TRUE(t.cancelled());
}

// The request count is kept in 16 bits (a task's size): it saturates instead of wrapping to 0,
// which would make a task with requests pending look uncancelled.
CORIO_TEST(Task, CancellingSaturatesAt65535Requests) {
    corio::testing::MockClock clock;
    Task<int> t = create_task(value_after(10s, 1));
    for (int i = 0; i < 70000; ++i) EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 65535);
    EXPECT_EQ(t.uncancel(), 65534);
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
}

namespace {
Coro<> uncancel_then_sleep() {
    bool cancelled = false;
    try {
        co_await sleep(10s);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        current_task().uncancel();
        co_await sleep(10s);
    }
}
}  // namespace

// T10 / test_tasks.py::BaseTaskTests::test_uncancel_basic.
CORIO_TEST(Task, UncancelDecrementsTheCount) {
    corio::testing::MockClock clock;
    Task<> t = create_task(uncancel_then_sleep());
    co_await sleep(10ms);
    EXPECT_TRUE(t.cancel());  // cancels the first sleep
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_FALSE(t.cancelled());
    co_await sleep(10ms);
    EXPECT_EQ(t.cancelling(), 0);  // after the task's uncancel()
    EXPECT_FALSE(t.done());
    EXPECT_TRUE(t.cancel());  // cancels the second sleep
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_FALSE(t.cancelled());
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
    EXPECT_TRUE(t.cancelled());
    t.uncancel();  // no effect on a finished task
    EXPECT_TRUE(t.cancelled());
    EXPECT_TRUE(t.done());
    EXPECT_EQ(t.uncancel(), 0);  // never below zero
}

namespace {
Coro<int> await_then_42(Future<>* fut) {
    co_await *fut;
    co_return 42;
}
}  // namespace

// T10 (3.13) / test_tasks.py::BaseTaskTests::test_uncancel_resets_must_cancel: a task woken
// from its future and not yet run is cancelled, then uncancelled: the pending cancellation is
// dropped and the task returns 42.
CORIO_TEST(Task, UncancelClearsPendingCancellationOfWokenTask) {
    EventLoop& loop = get_running_loop();
    Future<> fut(loop);
    Task<int> t = create_task(await_then_42(&fut));
    co_await sleep(0s);  // t waits for fut
    fut.set_result();    // t is runnable
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_EQ(t.uncancel(), 0);
    auto outcome = cancelled_with(t);
    auto r = co_await std::move(outcome);
    EXPECT_FALSE(r.has_value());
    EXPECT_FALSE(t.cancelled());
    if (!t.cancelled()) {
        int v = t.result();
        EXPECT_EQ(v, 42);
    }
}

namespace {
// Cancels itself, has a callback queued ahead of its wake-up take the request back, then awaits
// a bare yield (sleep(0)) or a real sleep; says whether the await raised.
Coro<bool> self_cancel_taken_back_before_next_tick(Clock::duration pause) {
    AnyTask self = current_task();
    self.cancel();
    get_running_loop().call_soon([self]() mutable { self.uncancel(); });
    try {
        co_await sleep(pause);
    } catch (const CancelledError&) {
        co_return true;
    }
    co_return false;
}
}  // namespace

// T10 (3.13): a cancel pending at a bare yield (sleep(0)) is not yet delivered (asyncio's
// __step keeps _must_cancel and calls itself soon), so uncancel() back to zero before the next
// tick drops it. At a real sleep it was delivered at once (asyncio cancels the sleep's future),
// and taking the request back later does not undo that.
CORIO_TEST(Task, UncancelBeforeTheNextTickTakesBackACancelPendingAtABareYield) {
    Task<bool> at_yield = create_task(self_cancel_taken_back_before_next_tick(0s));
    bool raised_at_yield = co_await at_yield;
    EXPECT_FALSE(raised_at_yield);
    EXPECT_EQ(at_yield.cancelling(), 0);
    Task<bool> at_sleep = create_task(self_cancel_taken_back_before_next_tick(1ms));
    bool raised_at_sleep = co_await at_sleep;
    EXPECT_TRUE(raised_at_sleep);
}

namespace {
Coro<> acquire_and_count(Lock* lock, int* inside) {
    LockGuard held = co_await lock->acquire();
    ++*inside;
}
Coro<> sleep_an_hour() { co_await sleep(3600s); }
}  // namespace

// T10: a second cancel() finds the waiter already given up by the first; taking both back with
// uncancel() must not undo the first, delivered one (the waiter had left the lock's queue, and
// used to come back with a lock it was never granted).
CORIO_TEST(Task, UncancelToZeroKeepsACancellationAlreadyDeliveredToALockWaiter) {
    Lock lock;
    LockGuard mine = co_await lock.acquire();
    int inside = 0;
    Task<> waiter = create_task(acquire_and_count(&lock, &inside));
    co_await sleep(0s);
    waiter.cancel();
    waiter.cancel();
    EXPECT_EQ(waiter.uncancel(), 1);
    EXPECT_EQ(waiter.uncancel(), 0);
    auto outcome = cancelled_with(waiter);
    auto r = co_await std::move(outcome);
    EXPECT_TRUE(r.has_value());
    EXPECT_EQ(inside, 0);
    EXPECT_TRUE(lock.locked());
}

CORIO_TEST(Task, UncancelToZeroKeepsACancellationAlreadyDeliveredToASleep) {
    corio::testing::MockClock clock;
    Task<> sleeper = create_task(sleep_an_hour());
    co_await sleep(0s);
    sleeper.cancel();
    sleeper.cancel();
    sleeper.uncancel();
    sleeper.uncancel();
    auto outcome = cancelled_with(sleeper);
    auto r = co_await std::move(outcome);
    EXPECT_TRUE(r.has_value());
    EXPECT_TRUE(sleeper.cancelled());
}

// T10 (3.13): the same with a task that has not started: the cancel is dropped, the body runs.
CORIO_TEST(Task, UncancelClearsPendingCancellationOfUnstartedTask) {
    bool ran = false;
    auto body = [](bool* flag) -> Coro<int> {
        *flag = true;
        co_await sleep(0s);
        co_return 42;
    };
    Task<int> t = create_task(body(&ran));
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.uncancel(), 0);
    int v = co_await t;
    EXPECT_EQ(v, 42);
    EXPECT_TRUE(ran);
    EXPECT_FALSE(t.cancelled());
}

// T10 (3.13): a task that cancels itself and uncancels before suspending is not cancelled.
CORIO_TEST(Task, UncancelClearsPendingSelfCancellation) {
    auto body = []() -> Coro<int> {
        AnyTask me = current_task();
        me.cancel();
        me.uncancel();
        co_await sleep(0s);
        co_return 7;
    };
    Task<int> t = create_task(body());
    int v = co_await t;
    EXPECT_EQ(v, 7);
}

namespace {
struct Probe {
    int* destroyed;
    ~Probe() { ++*destroyed; }
};
Coro<int> probed_body(bool* started, int* destroyed) {
    Probe p{destroyed};
    *started = true;
    try {
        co_await sleep(1h);
    } catch (...) {
        *started = true;
        throw;
    }
    co_return 1;
}
}  // namespace

// T7 / test_tasks.py::BaseTaskTests::test_cancel_with_message_before_starting_task: a task
// cancelled before its first step never runs its body (no code, no catch, no local objects).
CORIO_TEST(Task, CancelBeforeFirstStepNeverRunsTheBody) {
    bool started = false;
    int destroyed = 0;
    Task<int> t = create_task(probed_body(&started, &destroyed));
    EXPECT_TRUE(t.cancel("early"));
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_EQ(msg, std::optional<std::string>("early"));
    EXPECT_TRUE(t.cancelled());
    EXPECT_FALSE(started);
    EXPECT_EQ(destroyed, 0);
}

// T6 / test_tasks.py::BaseTaskTests::test_cancel_at_end: a task that cancels itself and returns
// without suspending again ends cancelled; its result is dropped.
CORIO_TEST(Task, CancelAtEndDiscardsTheResult) {
    auto body = []() -> Coro<int> {
        current_task().cancel();
        co_return 12;
    };
    Task<int> t = create_task(body());
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
    EXPECT_TRUE(t.cancelled());
}

// T6 / test_tasks.py::BaseTaskTests::test_cancel_current_task: after cancelling itself, the
// task's next await raises at once (sleep(100) does not wait).
CORIO_TEST(Task, SelfCancelledTaskDoesNotWaitInSleep) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    bool slept = false;
    auto body = [](bool* flag) -> Coro<> {
        current_task().cancel();
        co_await sleep(100s);
        *flag = true;
    };
    Task<> t = create_task(body(&slept));
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
    EXPECT_TRUE(t.cancelled());
    EXPECT_FALSE(slept);
    EXPECT_EQ(clock.now(), t0);
}

// T6 (source: Future.__await__ / Task.__step): a self-cancelled task that then awaits a pending
// future cancels that future.
CORIO_TEST(Task, SelfCancelledTaskCancelsTheFutureItAwaits) {
    EventLoop& loop = get_running_loop();
    Future<int> fut(loop);
    auto body = [](Future<int>* f) -> Coro<int> {
        current_task().cancel("self");
        int v = co_await *f;
        co_return v;
    };
    Task<int> t = create_task(body(&fut));
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_EQ(msg, std::optional<std::string>("self"));
    EXPECT_TRUE(fut.cancelled());
}

// T6 / test_tasks.py::BaseTaskTests::test_cancel_awaited_task (bpo-34872): a task cancels itself
// and then awaits a child task: the child is cancelled, and so is the future the child awaits.
CORIO_TEST(Task, SelfCancelledTaskCancelsTheTaskItAwaits) {
    EventLoop& loop = get_running_loop();
    Future<> fut(loop);
    Task<> nested;
    auto nested_body = [](Future<>* f) -> Coro<> { co_await *f; };
    auto body = [&nested, &nested_body](Future<>* f) -> Coro<> {
        nested = create_task(nested_body(f));
        co_await sleep(0s);
        current_task().cancel();
        co_await nested;
    };
    Task<> t = create_task(body(&fut));
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_TRUE(msg.has_value());
    EXPECT_TRUE(t.cancelled());
    co_await ticks(2);
    EXPECT_TRUE(nested.cancelled());
    EXPECT_TRUE(fut.cancelled());
    if (!nested.done()) {  // keep the harness clean if the behaviour is broken
        nested.cancel();
        auto outcome2 = cancelled_with(nested);
        auto m2 = co_await std::move(outcome2);
        (void)m2;
    }
}

namespace {
Coro<int> catching_42(Future<>* f1, Future<>* f2) {
    co_await *f1;
    try {
        co_await *f2;
    } catch (const CancelledError&) {
        co_return 42;
    }
    co_return 0;
}
}  // namespace

// T5 / test_tasks.py::BaseTaskTests::test_cancel_task_catching: the awaited future is cancelled
// synchronously by cancel(); the task catches CancelledError and returns 42: not cancelled.
CORIO_TEST(Task, CatchingCancelAndReturning42) {
    EventLoop& loop = get_running_loop();
    Future<> f1(loop), f2(loop);
    Task<int> t = create_task(catching_42(&f1, &f2));
    co_await sleep(0s);
    EXPECT_FALSE(f1.cancelled());
    f1.set_result();
    co_await sleep(0s);
    EXPECT_TRUE(t.cancel());
    EXPECT_TRUE(f2.cancelled());  // at once (T4)
    int v = co_await t;
    EXPECT_EQ(v, 42);
    EXPECT_FALSE(t.cancelled());
}

namespace {
Coro<int> ignoring_cancel(Future<>* f1, Future<>* f2, Future<>* f3) {
    co_await *f1;
    try {
        co_await *f2;
    } catch (const CancelledError&) {
    }
    co_await *f3;
    co_return 42;
}
}  // namespace

// T5 / test_tasks.py::BaseTaskTests::test_cancel_task_ignoring: cancellation is edge-triggered;
// once caught, later awaits are not cancelled again.
CORIO_TEST(Task, CancellationIsEdgeTriggered) {
    EventLoop& loop = get_running_loop();
    Future<> f1(loop), f2(loop), f3(loop);
    Task<int> t = create_task(ignoring_cancel(&f1, &f2, &f3));
    co_await sleep(0s);
    f1.set_result();
    co_await sleep(0s);
    EXPECT_TRUE(t.cancel());
    EXPECT_TRUE(f2.cancelled());
    co_await ticks(2);
    EXPECT_FALSE(t.done());
    EXPECT_FALSE(f3.cancelled());
    f3.set_result();
    int v = co_await t;
    EXPECT_EQ(v, 42);
    EXPECT_FALSE(t.cancelled());
}

namespace {
Coro<std::string> await_self(Task<std::string>* self) {
    co_await sleep(0s);
    try {
        Task<std::string> me = *self;
        co_await me;
    } catch (const std::logic_error& e) {
        co_return std::string("logic_error: ") + e.what();
    }
    co_return "no error";
}
}  // namespace

// T3 / test_tasks.py::BaseTaskTests::test_task_awaits_on_itself (RuntimeError there,
// std::logic_error here).
CORIO_TEST(Task, TaskAwaitingItselfThrowsLogicError) {
    Task<std::string> t;
    t = create_task(await_self(&t));
    std::string r = co_await t;
    EXPECT_EQ(r, "logic_error: Task cannot await on itself");
}

namespace {
Coro<std::string> await_self_then_cancel_self(Task<std::string>* self) {
    co_await sleep(0s);
    bool refused = false;
    try {
        Task<std::string> me = *self;
        co_await me;
    } catch (const std::logic_error&) {
        refused = true;
    }
    if (!refused) co_return "no error";
    current_task().cancel("after self-await");
    co_await sleep(0s);
    co_return "not cancelled";
}
}  // namespace

// T3 + T4: the refused self-await leaves the task an ordinary running task: cancelling it
// afterwards delivers CancelledError at its next await.
CORIO_TEST(Task, TaskThatWasRefusedASelfAwaitCanStillBeCancelled) {
    Task<std::string> t;
    t = create_task(await_self_then_cancel_self(&t));
    auto outcome = cancelled_with(t);
    auto msg = co_await std::move(outcome);
    EXPECT_EQ(msg, std::optional<std::string>("after self-await"));
    EXPECT_TRUE(t.cancelled());
}
