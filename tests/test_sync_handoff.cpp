// The moment between a hand-off and the waiter's first step, for Lock, Semaphore and Condition:
// release() has given the lock (or a permit) to a woken waiter that has not run yet. asyncio's
// lock is unlocked then, so a second release(), and a Condition's wait() or notify(), raise
// RuntimeError (python3 3.11, the scenarios below); and a primitive destroyed then must not be
// touched by that waiter when it runs or is cancelled (lock.md, semaphore.md: "they can still be
// cancelled").
#include <corio/testing.hpp>
#include <corio/condition.hpp>
#include <corio/lock.hpp>
#include <corio/semaphore.hpp>

#include "core_support.hpp"
#include "queue_support.hpp"

#include <algorithm>
#include <memory>
#include <source_location>
#include <stdexcept>

using namespace corio;
using namespace std::chrono_literals;

namespace {

struct Occupancy {
    int inside = 0;
    int most = 0;
};

// Holds `lock` for two ticks, counting who is inside at once.
Coro<> hold_for_two_ticks(Lock* lock, Occupancy* seen) {
    LockGuard held = co_await lock->acquire();
    seen->most = std::max(seen->most, ++seen->inside);
    for (int i = 0; i < 2; ++i) {
        auto tick = sleep(0s);
        co_await std::move(tick);
    }
    --seen->inside;
}

// Takes the condition's lock for a tick, counting who is inside at once.
Coro<> hold_condition_lock(Condition* cond, Occupancy* seen) {
    LockGuard held = co_await cond->acquire();
    seen->most = std::max(seen->most, ++seen->inside);
    auto tick = sleep(0s);
    co_await std::move(tick);
    --seen->inside;
}

Coro<> one_tick() {
    auto tick = sleep(0s);
    co_await std::move(tick);
}

// Takes the lock or permit and keeps it (the primitive is gone by then); true if the guard was
// empty.
Coro<bool> take_lock(Lock* lock) {
    LockGuard held = co_await lock->acquire();
    const bool empty = !held;
    held.dismiss();
    co_return empty;
}

// A waiter handed a primitive that is gone since: cancelled, it throws CancelledError; let run,
// it gets an empty guard.
Coro<> cancel_or_let_run(Task<bool> waiter, bool cancel) {
    if (cancel) {
        waiter.cancel();
        CO_EXPECT_THROWS(CancelledError, waiter);
    } else {
        const bool empty_guard = co_await waiter;
        EXPECT_TRUE(empty_guard);
    }
}

Coro<bool> take_permit(Semaphore* sem) {
    SemaphoreGuard held = co_await sem->acquire();
    const bool empty = !held;
    held.dismiss();
    co_return empty;
}

}  // namespace

// python3: lock.release() twice while a waiter is woken -> RuntimeError('Lock is not acquired.');
// corio handed the waiter's lock to the next waiter: two tasks inside at once.
CORIO_TEST(SyncHandOff, SecondLockReleaseBeforeTheWaiterRunsThrows) {
    Lock lock;
    Occupancy seen;
    LockGuard mine = co_await lock.acquire();
    mine.dismiss();
    Task<> first = create_task(hold_for_two_ticks(&lock, &seen));
    Task<> second = create_task(hold_for_two_ticks(&lock, &seen));
    Coro<> queued = one_tick();
    co_await std::move(queued);
    lock.release();  // handed to `first`
    EXPECT_THROW(lock.release(), std::logic_error);
    EXPECT_TRUE(lock.locked());  // still no barging
    co_await first;
    co_await second;
    EXPECT_EQ(seen.most, 1);
    EXPECT_FALSE(lock.locked());
}

// The RAII form of the same mistake (`async with lock: lock.release()`): the guard's release at
// the end of the scope is the error, reported, and the waiter keeps the lock alone.
CORIO_TEST(SyncHandOff, GuardReleasingAfterAManualReleaseIsReportedAndTakesNothing) {
    corio_test::CapturedReports captured;
    Lock lock;
    Occupancy seen;
    Task<> first = create_task(hold_for_two_ticks(&lock, &seen));
    Task<> second = create_task(hold_for_two_ticks(&lock, &seen));
    {
        LockGuard held = co_await lock.acquire();
        Coro<> queued = one_tick();
        co_await std::move(queued);
        lock.release();  // hands it to `first`; the guard's own release follows
    }
    co_await first;
    co_await second;
    EXPECT_EQ(seen.most, 1);
    CO_ASSERT_EQ(captured.reports.size(), 1u);
    EXPECT_NE(captured.reports[0].message.find("could not release"), std::string::npos);
}

// python3: after cond.release() handed the lock on, cond.notify() -> RuntimeError('cannot notify
// on un-acquired lock') and cond.wait() -> RuntimeError('cannot wait on un-acquired lock').
CORIO_TEST(SyncHandOff, ConditionWaitAndNotifyRefuseALockHandedToAnother) {
    Condition cond;
    LockGuard mine = co_await cond.acquire();
    mine.dismiss();
    Occupancy seen;
    Task<> other = create_task(hold_condition_lock(&cond, &seen));
    Coro<> queued = one_tick();
    co_await std::move(queued);
    cond.release();  // the lock now belongs to `other`
    EXPECT_THROW(cond.notify(), std::logic_error);
    EXPECT_THROW(cond.notify_all(), std::logic_error);
    Coro<bool> waiting = cond.wait();
    bool threw = false;
    try {
        (void)co_await std::move(waiting);
    } catch (const std::logic_error&) {
        threw = true;
    }
    EXPECT_TRUE(threw);
    co_await other;
    EXPECT_EQ(seen.most, 1);
    EXPECT_FALSE(cond.locked());
}

// lock.md: a destroyed lock's waiters can still be cancelled, the one it was handed to included
// (it resumed into the freed lock: ASan heap-use-after-free); not cancelled, it runs with an
// empty guard: there is no lock left to hold or release.
CORIO_TEST(SyncHandOff, WaiterHandedADestroyedLockCanBeCancelledOrRun) {
    for (bool cancel : {true, false}) {
        auto lock = std::make_unique<Lock>();
        LockGuard mine = co_await lock->acquire();
        mine.dismiss();
        Task<bool> waiter = create_task(take_lock(lock.get()));
        Coro<> queued = one_tick();
        co_await std::move(queued);
        lock->release();  // handed to `waiter`, which has not run
        lock.reset();
        Coro<> ending = cancel_or_let_run(waiter, cancel);
        co_await std::move(ending);
    }
}

// semaphore.md: the same for a semaphore's handed permit (it resumed into the freed semaphore).
CORIO_TEST(SyncHandOff, WaiterHandedAPermitOfADestroyedSemaphoreCanBeCancelledOrRun) {
    for (bool cancel : {true, false}) {
        auto sem = std::make_unique<Semaphore>(0);
        Task<bool> waiter = create_task(take_permit(sem.get()));
        Coro<> queued = one_tick();
        co_await std::move(queued);
        sem->release();  // handed to `waiter`
        sem.reset();
        Coro<> ending = cancel_or_let_run(waiter, cancel);
        co_await std::move(ending);
    }
}

// A waiter still in line on a destroyed semaphore can be cancelled too.
CORIO_TEST(SyncHandOff, WaiterInLineOnADestroyedSemaphoreCanBeCancelled) {
    auto sem = std::make_unique<Semaphore>(0);
    Task<bool> waiter = create_task(take_permit(sem.get()));
    Coro<> queued = one_tick();
    co_await std::move(queued);
    sem.reset();
    waiter.cancel();
    CO_EXPECT_THROWS(CancelledError, waiter);
}

namespace {
Coro<> holds_a_permit(Semaphore* sem) {
    SemaphoreGuard held = co_await sem->acquire();
}

Coro<> holds_the_lock(Lock* lock) {
    LockGuard held = co_await lock->acquire();
}

Coro<> takes_the_lock_for_good(Lock* lock) {
    LockGuard held = co_await lock->acquire();
    held.dismiss();
}
}  // namespace

// A loop closed while a task it had handed a permit to has not run yet: the task's frame dies
// with the permit, which goes back (the semaphore outlives the loop). The abandoned awaiter was
// unlinked from the wrong list, and the semaphore then kept a pointer into the freed frame
// (ASan heap-use-after-free when it was destroyed) and stayed locked for good.
TEST(SyncHandOffAtClose, APermitHandedToATaskAbandonedByCloseComesBack) {
    Semaphore sem(0);
    {
        EventLoop loop;
        Task<> taker = detail::spawn(loop, holds_a_permit(&sem), "taker", std::source_location::current());
        int ticks = 0;
        loop.run_until([&ticks] { return ticks++ >= 1; });  // it queues on the semaphore
        sem.release();                                      // handed to it; it has not run
        loop.close();
    }
    EXPECT_EQ(sem.value(), 1);
    EXPECT_FALSE(sem.locked());
}

// The same for a lock: the task it was handed to dies with the loop, and passes it on, as the
// guard it never got would have (to the other waiter, which dies too): the lock, which outlives
// the loop, ends unlocked. It stayed locked for good.
TEST(SyncHandOffAtClose, ALockHandedToATaskAbandonedByCloseIsPassedOn) {
    Lock lock;
    {
        EventLoop loop;
        const auto here = std::source_location::current();
        Task<> holder = detail::spawn(loop, takes_the_lock_for_good(&lock), "holder", here);
        Task<> first = detail::spawn(loop, holds_the_lock(&lock), "first", here);
        Task<> second = detail::spawn(loop, holds_the_lock(&lock), "second", here);
        int ticks = 0;
        loop.run_until([&ticks] { return ticks++ >= 1; });  // the holder has it, the others queue
        lock.release();                                     // handed to `first`; it has not run
        EXPECT_THROW(lock.release(), std::logic_error);
        loop.close();
    }
    EXPECT_FALSE(lock.locked());
}
