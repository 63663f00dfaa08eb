// corio::Lock, ported from CPython's Lib/test/test_asyncio/test_locks.py (LockTests) plus the
// cancellation hand-off cases of asyncio-rules.md LK1-LK3 and P6.
#include <corio/testing.hpp>
#include <corio/event.hpp>
#include <corio/lock.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

// `await lock.acquire()` without `async with`: holds the lock after returning.
Coro<bool> acquire_and_record(Lock& lock, std::vector<int>& out, int tag) {
    LockGuard g = co_await lock.acquire();
    g.dismiss();
    out.push_back(tag);
    co_return true;
}

Coro<> acquire_only(Lock& lock) {
    LockGuard g = co_await lock.acquire();
    g.dismiss();
}

// Awaits `t`; true if it ended cancelled.
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

// test_acquire / test_release_no_waiters / test_context_manager
CORIO_TEST(Lock, AcquireLocksAndGuardReleases) {
    Lock lock;
    EXPECT_FALSE(lock.locked());
    {
        LockGuard g = co_await lock.acquire();
        EXPECT_TRUE(g.owns());
        EXPECT_TRUE(lock.locked());
    }
    EXPECT_FALSE(lock.locked());
    LockGuard g = co_await lock.acquire();
    g.dismiss();
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked());
}

// test_release_not_acquired
CORIO_TEST(Lock, ReleaseNotAcquiredThrows) {
    Lock lock;
    try {
        lock.release();
        ADD_FAILURE() << "release() of an unlocked lock did not throw";
    } catch (const std::logic_error& e) {
        EXPECT_STREQ(e.what(), "Lock is not acquired.");
    }
    co_return;
}

// test_acquire: FIFO, and a task arriving after a release still queues behind the woken
// waiter (no barging, LK2).
CORIO_TEST(Lock, AcquireIsFifoWithoutBarging) {
    Lock lock;
    std::vector<int> result;
    LockGuard held = co_await lock.acquire();
    held.dismiss();

    auto t1 = create_task(acquire_and_record(lock, result, 1));
    auto t2 = create_task(acquire_and_record(lock, result, 2));
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{});

    lock.release();
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{1});
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{1});

    auto t3 = create_task(acquire_and_record(lock, result, 3));
    lock.release();  // hands the lock to t2 before t3 ever runs
    co_await sleep(0s);
    EXPECT_EQ(result, (std::vector<int>{1, 2}));

    lock.release();
    co_await sleep(0s);
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
    lock.release();
}

// test_acquire_cancel: the cancelled waiter leaves the queue.
CORIO_TEST(Lock, AcquireCancelLeavesQueue) {
    Lock lock;
    LockGuard held = co_await lock.acquire();
    auto task = create_task(acquire_only(lock));
    get_running_loop().call_soon([task]() mutable { task.cancel(); });
    EXPECT_TRUE(co_await ended_cancelled(task));
    EXPECT_TRUE(lock.locked());
    held.release();
    EXPECT_FALSE(lock.locked());  // nobody left in line to hand it to
}

// test_cancel_race: B is cancelled as A releases; the lock must go to C, not to B.
// corio hands the lock over at release(), so it reads locked until C has run and released
// (CPython shows it unlocked in between; either way no newcomer could take it).
CORIO_TEST(Lock, CancelRaceSkipsCancelledWaiter) {
    Lock lock;
    Event blocker;
    std::vector<std::string> order;
    auto lockit = [&](std::string name, Event* block) -> Coro<> {
        LockGuard g = co_await lock.acquire();
        order.push_back(name);
        if (block) co_await block->wait();
    };
    auto ta = create_task(lockit("A", &blocker));
    co_await sleep(0s);
    EXPECT_TRUE(lock.locked());
    auto tb = create_task(lockit("B", nullptr));
    co_await sleep(0s);
    auto tc = create_task(lockit("C", nullptr));
    co_await sleep(0s);

    blocker.set();
    tb.cancel();
    co_await sleep(0s);
    EXPECT_TRUE(ta.done());
    EXPECT_TRUE(tb.cancelled());
    EXPECT_TRUE(lock.locked());  // handed to C
    co_await tc;
    EXPECT_FALSE(lock.locked());
    EXPECT_EQ(order, (std::vector<std::string>{"A", "C"}));
}

// test_cancel_release_race (bpo-32734): cancel the first waiter and release at once; exactly
// one task may take the lock.
CORIO_TEST(Lock, CancelReleaseRaceExactlyOneAcquirer) {
    Lock lock;
    int lock_count = 0;
    int call_count = 0;
    auto lockit = [&]() -> Coro<> {
        ++call_count;
        LockGuard g = co_await lock.acquire();
        g.dismiss();
        ++lock_count;
    };
    LockGuard held = co_await lock.acquire();
    held.dismiss();
    auto t1 = create_task(lockit());
    auto t2 = create_task(lockit());
    auto t3 = create_task(lockit());
    co_await sleep(0s);

    get_running_loop().call_soon([&] {
        t1.cancel();
        lock.release();
    });
    EXPECT_TRUE(co_await ended_cancelled(t1));
    EXPECT_EQ(lock_count, 1);
    EXPECT_EQ(call_count, 3);
    EXPECT_TRUE(t1.cancelled() && t2.done());

    t3.cancel();
    co_await sleep(0s);
    EXPECT_TRUE(t3.cancelled());
    EXPECT_TRUE(lock.locked());  // t2 kept it
}

// test_finished_waiter_cancelled: the first waiter is cancelled just before the release; the
// next task in line must still get the lock.
CORIO_TEST(Lock, FinishedWaiterCancelledNextStillAcquires) {
    Lock lock;
    LockGuard held = co_await lock.acquire();
    held.dismiss();
    auto tb = create_task(acquire_only(lock));
    co_await sleep(0s);
    auto tc = create_task(acquire_only(lock));
    tb.cancel();
    lock.release();
    co_await sleep(0s);
    EXPECT_TRUE(lock.locked());
    EXPECT_TRUE(tb.cancelled());
    co_await tc;
    EXPECT_TRUE(lock.locked());
    lock.release();
}

// P6 / LK3: a waiter cancelled after the lock was handed to it, before it ran, passes the
// lock on to the next waiter; nothing is lost, nothing is held twice.
CORIO_TEST(Lock, CancelAfterHandOffPassesLockOn) {
    Lock lock;
    std::vector<int> result;
    LockGuard held = co_await lock.acquire();
    auto t1 = create_task(acquire_and_record(lock, result, 1));
    auto t2 = create_task(acquire_and_record(lock, result, 2));
    co_await sleep(0s);
    held.release();  // granted to t1
    EXPECT_TRUE(lock.locked());
    t1.cancel();  // before t1 runs
    EXPECT_TRUE(co_await ended_cancelled(t1));
    co_await t2;
    EXPECT_EQ(result, std::vector<int>{2});
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked());

    // With nobody behind it, the hand-back unlocks.
    held = co_await lock.acquire();
    auto t3 = create_task(acquire_and_record(lock, result, 3));
    co_await sleep(0s);
    held.release();
    t3.cancel();
    EXPECT_TRUE(co_await ended_cancelled(t3));
    EXPECT_FALSE(lock.locked());
}

// A cancel requested before the task reaches acquire() is delivered there, without queueing.
CORIO_TEST(Lock, PendingCancelDeliveredAtAcquire) {
    Lock lock;
    LockGuard held = co_await lock.acquire();
    bool reached = false;
    auto body = [&]() -> Coro<> {
        reached = true;
        current_task().cancel();
        LockGuard g = co_await lock.acquire();
        ADD_FAILURE() << "acquired a locked lock";
    };
    auto t = create_task(body());
    EXPECT_TRUE(co_await ended_cancelled(t));
    EXPECT_TRUE(reached);
    held.release();
    EXPECT_FALSE(lock.locked());  // the cancelled task never queued
}

// Guards are movable and release exactly once, early or at destruction.
CORIO_TEST(Lock, GuardMovesAndReleasesOnce) {
    Lock lock;
    LockGuard a = co_await lock.acquire();
    LockGuard b = std::move(a);
    EXPECT_FALSE(a.owns());
    EXPECT_TRUE(b.owns());
    EXPECT_TRUE(lock.locked());
    b.release();
    EXPECT_FALSE(b.owns());
    EXPECT_FALSE(lock.locked());
    b.release();  // a second release is a no-op
    EXPECT_FALSE(lock.locked());

    Lock other;
    LockGuard c = co_await lock.acquire();
    LockGuard d = co_await other.acquire();
    c = std::move(d);  // move-assignment releases what c held
    EXPECT_FALSE(lock.locked());
    EXPECT_TRUE(other.locked());
    {
        LockGuard e = std::move(c);
    }
    EXPECT_FALSE(other.locked());
}

// A guard cannot throw from its destructor: a lock released behind its back is reported to
// the loop's exception handler instead.
CORIO_TEST(Lock, GuardReleaseErrorGoesToExceptionHandler) {
    EventLoop& loop = get_running_loop();
    auto previous = loop.get_exception_handler();
    std::vector<std::string> reports;
    loop.set_exception_handler([&](EventLoop&, const ExceptionContext& c) {
        reports.push_back(detail::describe(c.exception));
    });
    Lock lock;
    {
        LockGuard g = co_await lock.acquire();
        lock.release();
    }
    loop.set_exception_handler(previous);
    EXPECT_EQ(reports, std::vector<std::string>{"Lock is not acquired."});
}

// wait_for(lock.acquire(), t): on expiry the waiter leaves the queue without taking the lock, so
// the holder's release leaves it free; in time, the guard comes back through wait_for.
CORIO_TEST(Lock, WaitForAcquireTimesOutWithoutTakingTheLock) {
    corio::testing::MockClock clock;
    Lock lock;
    std::optional<LockGuard> held;
    {
        Coro<LockGuard> first = wait_for(lock.acquire(), 1s);
        held.emplace(co_await std::move(first));
    }
    EXPECT_TRUE(lock.locked());
    bool timed_out = false;
    try {
        Coro<LockGuard> second = wait_for(lock.acquire(), 1s);
        LockGuard g = co_await std::move(second);
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    held.reset();
    EXPECT_FALSE(lock.locked());  // not handed to the waiter that timed out
    co_return;
}
