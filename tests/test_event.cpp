// corio::Event, ported from CPython's Lib/test/test_asyncio/test_locks.py (EventTests),
// asyncio-rules.md EV1-EV4.
#include <corio/testing.hpp>
#include <corio/event.hpp>

#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

Coro<bool> wait_and_record(Event& ev, std::vector<int>& out, int tag) {
    bool r = co_await ev.wait();
    if (r) out.push_back(tag);
    co_return r;
}

template <class T>
Coro<bool> ended_cancelled(Task<T> t) {
    try {
        co_await t;
    } catch (const CancelledError&) {
        co_return true;
    }
    co_return false;
}

}  // namespace

// test_wait: set() wakes every waiter FIFO, after a task whose first step was already
// scheduled: [3, 1, 2].
CORIO_TEST(Event, SetWakesAllWaitersInOrder) {
    Event ev;
    EXPECT_FALSE(ev.is_set());
    std::vector<int> result;
    auto t1 = create_task(wait_and_record(ev, result, 1));
    auto t2 = create_task(wait_and_record(ev, result, 2));
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{});

    auto t3 = create_task(wait_and_record(ev, result, 3));
    ev.set();
    co_await sleep(0s);
    EXPECT_EQ(result, (std::vector<int>{3, 1, 2}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
}

// test_wait_on_set: returns true at once, without giving up the loop.
CORIO_TEST(Event, WaitOnSetReturnsAtOnce) {
    Event ev;
    ev.set();
    bool other_ran = false;
    auto other = [&]() -> Coro<> {
        other_ran = true;
        co_return;
    };
    auto t = create_task(other());
    EXPECT_TRUE(co_await ev.wait());
    EXPECT_FALSE(other_ran);  // no tick passed
    co_await t;
    EXPECT_TRUE(other_ran);
}

// test_wait_cancel: a cancelled wait leaves the waiters, and a later set() wakes only the rest.
CORIO_TEST(Event, WaitCancelLeavesWaiters) {
    Event ev;
    std::vector<int> result;
    auto t1 = create_task(wait_and_record(ev, result, 1));
    auto t2 = create_task(wait_and_record(ev, result, 2));
    get_running_loop().call_soon([t1]() mutable { t1.cancel(); });
    EXPECT_TRUE(co_await ended_cancelled(t1));
    ev.set();
    co_await t2;
    EXPECT_EQ(result, std::vector<int>{2});
}

// test_clear
CORIO_TEST(Event, Clear) {
    Event ev;
    EXPECT_FALSE(ev.is_set());
    ev.set();
    EXPECT_TRUE(ev.is_set());
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    co_return;
}

// test_clear_with_waiters: clear() right after set() does not take back the wake-up, and
// repeated set() wakes nobody twice.
CORIO_TEST(Event, ClearAfterSetKeepsWaiterWoken) {
    Event ev;
    std::vector<int> result;
    auto t = create_task(wait_and_record(ev, result, 1));
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{});

    ev.set();
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    ev.set();
    ev.set();
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{1});
    EXPECT_TRUE(t.done() && t.result());
    EXPECT_TRUE(ev.is_set());
}

// A waiter woken by set() but cancelled before it runs gets the cancellation; the wake-up is
// shared, so the other waiters are unaffected.
CORIO_TEST(Event, CancelAfterSetDeliversCancel) {
    Event ev;
    std::vector<int> result;
    auto t1 = create_task(wait_and_record(ev, result, 1));
    auto t2 = create_task(wait_and_record(ev, result, 2));
    co_await sleep(0s);
    ev.set();
    t1.cancel();
    EXPECT_TRUE(co_await ended_cancelled(t1));
    co_await t2;
    EXPECT_EQ(result, std::vector<int>{2});
}

// A cancel requested before the wait is delivered at it; the task never joins the waiters.
CORIO_TEST(Event, PendingCancelDeliveredAtWait) {
    Event ev;
    auto body = [&]() -> Coro<> {
        current_task().cancel();
        co_await ev.wait();
        ADD_FAILURE() << "waited past a pending cancel";
    };
    auto t = create_task(body());
    EXPECT_TRUE(co_await ended_cancelled(t));
    ev.set();
    co_await sleep(0s);
}

// Waiting again after clear() blocks until the next set().
CORIO_TEST(Event, WaitAfterClearBlocksUntilNextSet) {
    Event ev;
    std::vector<int> result;
    ev.set();
    ev.clear();
    auto t = create_task(wait_and_record(ev, result, 1));
    co_await sleep(0s);
    co_await sleep(0s);
    EXPECT_FALSE(t.done());
    ev.set();
    co_await t;
    EXPECT_EQ(result, std::vector<int>{1});
}

// asyncio's idiom `await asyncio.wait_for(event.wait(), t)`: the awaiter moves into wait_for's
// frame; on expiry the waiter leaves, and a later set() wakes the others only.
CORIO_TEST(Event, WaitForEventWaitTimesOutAndLeaves) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Event ev;
    bool timed_out = false;
    try {
        Coro<bool> limited = wait_for(ev.wait(), 1s);
        co_await std::move(limited);
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(clock.seconds_since(t0), 1.0);

    std::vector<int> woken;
    Task<bool> other = create_task(wait_and_record(ev, woken, 7));
    get_running_loop().call_later(500ms, [&ev] { ev.set(); });
    Coro<bool> in_time = wait_for(ev.wait(), 1s);
    bool r = co_await std::move(in_time);
    EXPECT_TRUE(r);
    co_await other;
    EXPECT_EQ(woken, (std::vector<int>{7}));
    EXPECT_EQ(clock.seconds_since(t0), 1.5);
}
