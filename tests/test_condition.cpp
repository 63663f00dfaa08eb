// corio::Condition, ported from CPython's Lib/test/test_asyncio/test_locks.py (ConditionTests),
// asyncio-rules.md CD1-CD5 and P6 (bpo-22970, bpo-32841, gh-112202).
#include <corio/testing.hpp>
#include <corio/condition.hpp>
#include <corio/timeouts.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

// c1/c2/c3 of test_wait: take the lock and keep it after the wait returns.
Coro<bool> wait_keeping_lock(Condition& cond, std::vector<int>& out, int tag) {
    LockGuard g = co_await cond.acquire();
    g.dismiss();
    if (co_await cond.wait()) out.push_back(tag);
    co_return true;
}

// c1/c2/c3 of test_notify: release after the wait returns.
Coro<bool> wait_then_release(Condition& cond, std::vector<int>& out, int tag) {
    LockGuard g = co_await cond.acquire();
    if (co_await cond.wait()) out.push_back(tag);
    co_return true;
}

// The consumer of test_cancelled_wakeup: takes one unit of state per wake-up until state < 0.
Coro<> consumer(Condition& cond, int& state) {
    LockGuard g = co_await cond.acquire();
    for (;;) {
        auto nonzero = [&state] { return state != 0; };
        co_await cond.wait_for(nonzero);
        if (state < 0) co_return;
        --state;
    }
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

// test_wait: a notified waiter returns only once it holds the lock again.
CORIO_TEST(Condition, WaitReturnsOnlyWithTheLock) {
    Condition cond;
    std::vector<int> result;
    auto t1 = create_task(wait_keeping_lock(cond, result, 1));
    auto t2 = create_task(wait_keeping_lock(cond, result, 2));
    auto t3 = create_task(wait_keeping_lock(cond, result, 3));
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{});
    EXPECT_FALSE(cond.locked());

    LockGuard g = co_await cond.acquire();
    g.dismiss();
    cond.notify();
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{});
    EXPECT_TRUE(cond.locked());

    cond.release();
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{1});
    EXPECT_TRUE(cond.locked());

    cond.notify(2);  // t1 holds the lock; the lock is not owned
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{1});
    EXPECT_TRUE(cond.locked());

    cond.release();
    co_await sleep(0s);
    EXPECT_EQ(result, (std::vector<int>{1, 2}));
    EXPECT_TRUE(cond.locked());

    cond.release();
    co_await sleep(0s);
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(cond.locked());
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
    cond.release();
}

// test_wait_cancel: the lock is held again when the cancellation comes out.
CORIO_TEST(Condition, WaitCancelReacquiresLock) {
    Condition cond;
    LockGuard held = co_await cond.acquire();
    held.dismiss();
    auto wait = create_task(cond.wait());
    get_running_loop().call_soon([wait]() mutable { wait.cancel(); });
    EXPECT_TRUE(co_await ended_cancelled(wait));
    EXPECT_TRUE(cond.locked());
    // No waiter is left behind: a notify now wakes nobody.
    cond.notify_all();
    cond.release();
    EXPECT_FALSE(cond.locked());
}

// test_wait_cancel_contested: notified, then cancelled while the lock is contested; the task
// still ends holding the lock.
CORIO_TEST(Condition, WaitCancelContested) {
    Condition cond;
    LockGuard held = co_await cond.acquire();
    held.dismiss();
    auto wait_task = create_task(cond.wait());
    co_await sleep(0s);
    EXPECT_FALSE(cond.locked());

    held = co_await cond.acquire();
    held.dismiss();
    EXPECT_TRUE(cond.locked());
    cond.notify();
    EventLoop& loop = get_running_loop();
    loop.call_soon([wait_task]() mutable { wait_task.cancel(); });
    loop.call_soon([&cond] { cond.release(); });
    (void)co_await ended_cancelled(wait_task);  // either way, the lock must be held
    EXPECT_TRUE(cond.locked());
    cond.release();
}

// test_wait_cancel_after_notify (bpo-32841): cancelled while re-acquiring after a notify.
CORIO_TEST(Condition, WaitCancelAfterNotify) {
    Condition cond;
    bool waited = false;
    auto wait_on_cond = [&]() -> Coro<> {
        LockGuard g = co_await cond.acquire();
        waited = true;
        co_await cond.wait();
    };
    auto waiter = create_task(wait_on_cond());
    co_await sleep(0s);

    LockGuard held = co_await cond.acquire();
    cond.notify();
    co_await sleep(0s);  // the waiter gets to acquire()
    waiter.cancel();
    co_await sleep(0s);  // the cancellation is absorbed while re-acquiring
    EXPECT_FALSE(waiter.done());
    held.release();
    co_await sleep(0s);  // now it holds the lock and the cancellation comes out
    EXPECT_TRUE(waiter.cancelled());
    EXPECT_TRUE(waited);
    EXPECT_FALSE(cond.locked());  // its guard released on the way out
}

// test_wait_unacquired
CORIO_TEST(Condition, WaitUnacquiredThrows) {
    Condition cond;
    try {
        co_await cond.wait();
        ADD_FAILURE() << "wait() without the lock did not throw";
    } catch (const std::logic_error& e) {
        EXPECT_STREQ(e.what(), "cannot wait on un-acquired lock");
    }
}

// test_wait_for: waits through notifications until the predicate holds.
CORIO_TEST(Condition, WaitForPredicate) {
    Condition cond;
    bool presult = false;
    std::vector<int> result;
    auto predicate = [&presult] { return presult; };
    auto c1 = [&]() -> Coro<bool> {
        LockGuard g = co_await cond.acquire();
        g.dismiss();
        if (co_await cond.wait_for(predicate)) {
            result.push_back(1);
            cond.release();
        }
        co_return true;
    };
    auto t = create_task(c1());
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{});

    {
        LockGuard g = co_await cond.acquire();
        cond.notify();
    }
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{});

    presult = true;
    {
        LockGuard g = co_await cond.acquire();
        cond.notify();
    }
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{1});
    EXPECT_TRUE(t.done() && t.result());
}

// test_wait_for_unacquired: a predicate already true returns its value without the lock;
// otherwise the missing lock is an error.
CORIO_TEST(Condition, WaitForUnacquired) {
    Condition cond;
    auto ready = [] { return std::optional<int>(123); };
    std::optional<int> r = co_await cond.wait_for(ready);
    EXPECT_EQ(r, std::optional<int>(123));
    auto never = [] { return false; };
    try {
        co_await cond.wait_for(never);
        ADD_FAILURE() << "wait_for() without the lock did not throw";
    } catch (const std::logic_error&) {
    }
}

// test_notify: notify(n) wakes at most n waiters, in FIFO order.
CORIO_TEST(Condition, NotifyWakesAtMostN) {
    Condition cond;
    std::vector<int> result;
    auto t1 = create_task(wait_then_release(cond, result, 1));
    auto t2 = create_task(wait_then_release(cond, result, 2));
    auto t3 = create_task(wait_then_release(cond, result, 3));
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{});
    {
        LockGuard g = co_await cond.acquire();
        cond.notify(1);
    }
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{1});
    {
        LockGuard g = co_await cond.acquire();
        cond.notify(1);
        cond.notify(2048);
    }
    co_await sleep(0s);
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
}

// test_notify_all
CORIO_TEST(Condition, NotifyAllWakesEveryWaiter) {
    Condition cond;
    std::vector<int> result;
    auto t1 = create_task(wait_then_release(cond, result, 1));
    auto t2 = create_task(wait_then_release(cond, result, 2));
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{});
    {
        LockGuard g = co_await cond.acquire();
        cond.notify_all();
    }
    co_await sleep(0s);
    EXPECT_EQ(result, (std::vector<int>{1, 2}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
}

// test_notify_unacquired / test_notify_all_unacquired
CORIO_TEST(Condition, NotifyUnacquiredThrows) {
    Condition cond;
    EXPECT_THROW(cond.notify(), std::logic_error);
    EXPECT_THROW(cond.notify_all(), std::logic_error);
    co_return;
}

// test_context_manager
CORIO_TEST(Condition, GuardHoldsTheLock) {
    Condition cond;
    EXPECT_FALSE(cond.locked());
    {
        LockGuard g = co_await cond.acquire();
        EXPECT_TRUE(cond.locked());
    }
    EXPECT_FALSE(cond.locked());
}

// test_explicit_lock: a shared lock reflects the condition's state and back (CD5).
CORIO_TEST(Condition, ExplicitLockIsShared) {
    auto check = [](Lock& lock, Condition& cond) -> Coro<> {
        EXPECT_FALSE(lock.locked());
        EXPECT_FALSE(cond.locked());
        {
            LockGuard g = co_await cond.acquire();
            EXPECT_TRUE(lock.locked());
            EXPECT_TRUE(cond.locked());
        }
        EXPECT_FALSE(lock.locked());
        EXPECT_FALSE(cond.locked());
        {
            LockGuard g = co_await lock.acquire();
            EXPECT_TRUE(lock.locked());
            EXPECT_TRUE(cond.locked());
        }
        EXPECT_FALSE(lock.locked());
        EXPECT_FALSE(cond.locked());
    };
    Lock a;
    Condition by_ref(a);
    co_await check(a, by_ref);
    Lock b;
    Condition by_ptr(&b);
    co_await check(b, by_ptr);

    Condition owning(nullptr);
    {
        LockGuard g = co_await owning.acquire();
        EXPECT_TRUE(owning.locked());
    }
    EXPECT_FALSE(owning.locked());
}

// test_timeout_in_block: wait_for(cond.wait(), t) inside the lock times out with the lock
// held again, so leaving the block does not fail.
CORIO_TEST(Condition, TimeoutInBlockKeepsLock) {
    corio::testing::MockClock clock;
    Condition cond;
    LockGuard g = co_await cond.acquire();
    try {
        co_await corio::wait_for(cond.wait(), 500ms);
        ADD_FAILURE() << "no timeout";
    } catch (const TimeoutError&) {
    }
    EXPECT_TRUE(cond.locked());
}

// test_cancelled_error_wakeup: the CancelledError received while waiting for the wake-up is
// re-thrown as is: same object, same message.
CORIO_TEST(Condition, CancelledErrorWakeupIsRethrownUnchanged) {
    Condition cond;
    bool wake = false;
    const CancelledError* raised = nullptr;
    auto func = [&]() -> Coro<> {
        LockGuard g = co_await cond.acquire();
        auto woken = [&wake] { return wake; };
        try {
            co_await cond.wait_for(woken);
        } catch (const CancelledError& e) {
            raised = &e;
            EXPECT_TRUE(cond.locked());
            throw;
        }
    };
    auto task = create_task(func());
    co_await sleep(0s);
    task.cancel("foo");
    try {
        co_await task;
        ADD_FAILURE() << "not cancelled";
    } catch (const CancelledError& e) {
        EXPECT_EQ(e.message(), "foo");
        EXPECT_EQ(&e, raised);
    }
}

// test_cancelled_error_re_aquire: the same, for a cancel that lands while re-acquiring.
CORIO_TEST(Condition, CancelledErrorReacquireIsRethrownUnchanged) {
    Condition cond;
    bool wake = false;
    const CancelledError* raised = nullptr;
    auto func = [&]() -> Coro<> {
        LockGuard g = co_await cond.acquire();
        auto woken = [&wake] { return wake; };
        try {
            co_await cond.wait_for(woken);
        } catch (const CancelledError& e) {
            raised = &e;
            EXPECT_TRUE(cond.locked());
            throw;
        }
    };
    auto task = create_task(func());
    co_await sleep(0s);
    LockGuard held = co_await cond.acquire();
    wake = true;
    cond.notify();
    co_await sleep(0s);  // the task now waits to re-acquire
    task.cancel("foo");
    held.release();
    try {
        co_await task;
        ADD_FAILURE() << "not cancelled";
    } catch (const CancelledError& e) {
        EXPECT_EQ(e.message(), "foo");
        EXPECT_EQ(&e, raised);
    }
    EXPECT_FALSE(cond.locked());
}

// CD3: further cancellations during the re-acquire are absorbed; the latest one comes out.
CORIO_TEST(Condition, LatestCancelDuringReacquireWins) {
    Condition cond;
    LockGuard held = co_await cond.acquire();
    held.dismiss();
    auto waiter = create_task(cond.wait());
    co_await sleep(0s);
    held = co_await cond.acquire();  // contest the lock
    waiter.cancel("first");          // while waiting for a notify
    co_await sleep(0s);              // now queued on the lock
    EXPECT_FALSE(waiter.done());
    waiter.cancel("second");  // while re-acquiring: absorbed, re-queued
    co_await sleep(0s);
    EXPECT_FALSE(waiter.done());
    held.release();  // hands the lock to the waiter
    try {
        co_await waiter;
        ADD_FAILURE() << "not cancelled";
    } catch (const CancelledError& e) {
        EXPECT_EQ(e.message(), "second");
    }
    EXPECT_TRUE(cond.locked());  // wait() ends holding the lock
    cond.release();
}

// test_cancelled_wakeup (gh-112202): a consumer cancelled after notify(1), before it runs,
// must hand the notification on; the item is consumed by the other consumer.
CORIO_TEST(Condition, CancelledWakeupPassesNotificationOn) {
    Condition cond;
    int state = 0;
    auto c0 = create_task(consumer(cond, state));
    auto c1 = create_task(consumer(cond, state));
    co_await sleep(0s);
    {
        LockGuard g = co_await cond.acquire();
        state += 1;
        cond.notify(1);
        c0.cancel();  // while it waits to run
    }
    for (int i = 0; i < 4; ++i) co_await sleep(0s);
    EXPECT_EQ(state, 0);
    EXPECT_TRUE(c0.cancelled());
    {
        LockGuard g = co_await cond.acquire();
        state = -1;
        cond.notify_all();
    }
    co_await c1;
    EXPECT_TRUE(co_await ended_cancelled(c0));
}

// test_cancelled_wakeup_relock (gh-112202): the same, cancelled while re-acquiring the lock.
CORIO_TEST(Condition, CancelledWakeupRelockPassesNotificationOn) {
    Condition cond;
    int state = 0;
    auto c0 = create_task(consumer(cond, state));
    auto c1 = create_task(consumer(cond, state));
    co_await sleep(0s);
    {
        LockGuard g = co_await cond.acquire();
        state += 1;
        cond.notify(1);
        co_await sleep(0s);  // c0 wakes and queues on the lock
        c0.cancel();
    }
    for (int i = 0; i < 4; ++i) co_await sleep(0s);
    EXPECT_EQ(state, 0);
    EXPECT_TRUE(c0.cancelled());
    {
        LockGuard g = co_await cond.acquire();
        state = -1;
        cond.notify_all();
    }
    co_await c1;
    EXPECT_TRUE(co_await ended_cancelled(c0));
}

// A waiter cancelled before any notify does not consume one: the next notify(1) still wakes
// exactly one of the remaining waiters, in order.
CORIO_TEST(Condition, CancelledBeforeNotifyConsumesNothing) {
    Condition cond;
    std::vector<int> result;
    auto t1 = create_task(wait_then_release(cond, result, 1));
    auto t2 = create_task(wait_then_release(cond, result, 2));
    auto t3 = create_task(wait_then_release(cond, result, 3));
    co_await sleep(0s);
    t1.cancel();
    EXPECT_TRUE(co_await ended_cancelled(t1));
    {
        LockGuard g = co_await cond.acquire();
        cond.notify(1);
    }
    co_await sleep(0s);
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{2});
    EXPECT_FALSE(t3.done());
    {
        LockGuard g = co_await cond.acquire();
        cond.notify(1);
    }
    co_await t2;
    co_await t3;
    EXPECT_EQ(result, (std::vector<int>{2, 3}));
}

// API.md's form: the predicate written inline in the co_await expression.
CORIO_TEST(Condition, WaitForInlinePredicate) {
    Condition cond;
    std::vector<int> items;
    auto producer = [&]() -> Coro<> {
        co_await sleep(0s);
        LockGuard g = co_await cond.acquire();
        items.push_back(7);
        cond.notify();
    };
    auto t = create_task(producer());
    {
        LockGuard g = co_await cond.acquire();
        co_await cond.wait_for([&] { return !items.empty(); });
        EXPECT_EQ(items, std::vector<int>{7});
    }
    co_await t;
}
