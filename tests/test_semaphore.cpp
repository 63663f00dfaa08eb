// corio::Semaphore and BoundedSemaphore, ported from CPython's
// Lib/test/test_asyncio/test_locks.py (SemaphoreTests), asyncio-rules.md SM1-SM5 and P6
// (python/asyncio#270, bpo-45997, gh-90155).
#include <corio/testing.hpp>
#include <corio/semaphore.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

// `await sem.acquire(); result.append(tag)`: keeps the permit.
Coro<bool> acquire_and_record(Semaphore& sem, std::vector<int>& out, int tag) {
    SemaphoreGuard g = co_await sem.acquire();
    g.dismiss();
    out.push_back(tag);
    co_return true;
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

// test_initial_value_zero / test_semaphore_value / test_semaphore
CORIO_TEST(Semaphore, InitialValue) {
    Semaphore zero(0);
    EXPECT_TRUE(zero.locked());
    Semaphore one;
    EXPECT_EQ(one.value(), 1);
    EXPECT_FALSE(one.locked());
    EXPECT_THROW(Semaphore(-1), std::invalid_argument);
    EXPECT_THROW(BoundedSemaphore(-1), std::invalid_argument);
    co_return;
}

// test_acquire: permits are handed over at release(); the value counts only free ones.
CORIO_TEST(Semaphore, AcquireHandsPermitsOver) {
    Semaphore sem(3);
    std::vector<int> result;
    SemaphoreGuard a = co_await sem.acquire();
    SemaphoreGuard b = co_await sem.acquire();
    a.dismiss();
    b.dismiss();
    EXPECT_FALSE(sem.locked());

    auto t1 = create_task(acquire_and_record(sem, result, 1));
    auto t2 = create_task(acquire_and_record(sem, result, 2));
    auto t3 = create_task(acquire_and_record(sem, result, 3));
    co_await sleep(0s);
    EXPECT_EQ(result, std::vector<int>{1});
    EXPECT_TRUE(sem.locked());
    EXPECT_EQ(sem.value(), 0);

    auto t4 = create_task(acquire_and_record(sem, result, 4));
    sem.release();
    sem.release();
    EXPECT_EQ(sem.value(), 0);

    co_await sleep(0s);
    EXPECT_EQ(sem.value(), 0);
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3}));  // t4 queued behind t2 and t3
    EXPECT_TRUE(sem.locked());
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t3.done());
    EXPECT_FALSE(t4.done());

    sem.release();
    co_await t4;
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3, 4}));
}

// test_acquire_cancel: the cancelled waiter leaves no trace.
CORIO_TEST(Semaphore, AcquireCancel) {
    Semaphore sem;
    SemaphoreGuard held = co_await sem.acquire();
    std::vector<int> result;
    auto acquire = create_task(acquire_and_record(sem, result, 1));
    get_running_loop().call_soon([acquire]() mutable { acquire.cancel(); });
    EXPECT_TRUE(co_await ended_cancelled(acquire));
    held.release();
    EXPECT_EQ(sem.value(), 1);
    EXPECT_FALSE(sem.locked());
}

// test_acquire_cancel_before_awoken: cancelled waiters are skipped; the one release goes to t3.
CORIO_TEST(Semaphore, AcquireCancelBeforeAwoken) {
    Semaphore sem(0);
    std::vector<int> result;
    auto t1 = create_task(acquire_and_record(sem, result, 1));
    auto t2 = create_task(acquire_and_record(sem, result, 2));
    auto t3 = create_task(acquire_and_record(sem, result, 3));
    auto t4 = create_task(acquire_and_record(sem, result, 4));
    co_await sleep(0s);

    t1.cancel();
    t2.cancel();
    sem.release();
    co_await sleep(0s);
    co_await sleep(0s);
    EXPECT_TRUE(t3.done());
    EXPECT_FALSE(t4.done());
    EXPECT_EQ(result, std::vector<int>{3});

    t3.cancel();
    t4.cancel();
    EXPECT_TRUE(co_await ended_cancelled(t1));
    EXPECT_TRUE(co_await ended_cancelled(t2));
    EXPECT_TRUE(co_await t3);
    EXPECT_TRUE(co_await ended_cancelled(t4));
}

// test_acquire_hang
CORIO_TEST(Semaphore, AcquireHang) {
    Semaphore sem(0);
    std::vector<int> result;
    auto t1 = create_task(acquire_and_record(sem, result, 1));
    auto t2 = create_task(acquire_and_record(sem, result, 2));
    co_await sleep(0s);
    t1.cancel();
    sem.release();
    co_await sleep(0s);
    co_await sleep(0s);
    EXPECT_TRUE(sem.locked());
    EXPECT_TRUE(t2.done());
    EXPECT_TRUE(co_await ended_cancelled(t1));
}

// test_acquire_no_hang (gh-90155): the waiter handed the permit is cancelled before it runs;
// the permit must come back, or the next acquire hangs forever.
CORIO_TEST(Semaphore, AcquireNoHangAfterCancelledHandOff) {
    Semaphore sem(1);
    Task<> t2;
    auto c1 = [&]() -> Coro<> {
        {
            SemaphoreGuard g = co_await sem.acquire();
            co_await sleep(0s);
        }  // hands the permit to c2
        t2.cancel();
    };
    auto c2 = [&]() -> Coro<> {
        SemaphoreGuard g = co_await sem.acquire();
        ADD_FAILURE() << "c2 ran with the permit";
    };
    auto t1 = create_task(c1());
    t2 = create_task(c2());
    co_await t1;
    EXPECT_TRUE(co_await ended_cancelled(t2));
    EXPECT_EQ(sem.value(), 1);
    EXPECT_FALSE(sem.locked());
    SemaphoreGuard g = co_await sem.acquire();  // would hang if the permit was lost
    EXPECT_EQ(sem.value(), 0);
}

// test_release_not_acquired / SM5
CORIO_TEST(Semaphore, BoundedReleaseNotAcquiredThrows) {
    BoundedSemaphore sem;
    try {
        sem.release();
        ADD_FAILURE() << "over-release did not throw";
    } catch (const std::logic_error& e) {
        EXPECT_STREQ(e.what(), "BoundedSemaphore released too many times");
    }
    EXPECT_EQ(sem.value(), 1);
    co_return;
}

// SM5: permits handed to waiters that have not run yet already count as taken.
CORIO_TEST(Semaphore, BoundedCountsHandedPermitsAsTaken) {
    BoundedSemaphore sem(2);
    std::vector<int> result;
    SemaphoreGuard a = co_await sem.acquire();
    SemaphoreGuard b = co_await sem.acquire();
    auto t = create_task(acquire_and_record(sem, result, 1));
    co_await sleep(0s);
    a.release();  // handed to t: still 0 free
    EXPECT_EQ(sem.value(), 0);
    b.release();
    EXPECT_EQ(sem.value(), 1);
    co_await t;
    sem.release();  // t's permit, released by hand
    EXPECT_EQ(sem.value(), 2);
    EXPECT_THROW(sem.release(), std::logic_error);
    EXPECT_EQ(sem.value(), 2);
}

// test_release_no_waiters / test_context_manager
CORIO_TEST(Semaphore, ReleaseNoWaitersAndGuard) {
    Semaphore sem;
    {
        SemaphoreGuard g = co_await sem.acquire();
        EXPECT_TRUE(sem.locked());
    }
    EXPECT_FALSE(sem.locked());
    SemaphoreGuard g = co_await sem.acquire();
    g.dismiss();
    EXPECT_TRUE(sem.locked());
    sem.release();
    EXPECT_FALSE(sem.locked());

    BoundedSemaphore bounded(1);
    {
        SemaphoreGuard moved;
        {
            SemaphoreGuard inner = co_await bounded.acquire();
            moved = std::move(inner);
        }
        EXPECT_EQ(bounded.value(), 0);
        moved.release();
        EXPECT_EQ(bounded.value(), 1);
    }  // released once only: no over-release reported
    EXPECT_EQ(bounded.value(), 1);
}

// test_acquire_fifo_order: a task releasing and re-acquiring goes to the back of the line.
CORIO_TEST(Semaphore, AcquireFifoOrder) {
    corio::testing::MockClock clock;
    Semaphore sem(1);
    std::vector<std::string> result;
    auto coro = [&](std::string tag) -> Coro<> {
        {
            SemaphoreGuard g = co_await sem.acquire();
            result.push_back(tag + "_1");
            co_await sleep(10ms);
        }
        SemaphoreGuard g = co_await sem.acquire();
        result.push_back(tag + "_2");
        co_await sleep(10ms);
    };
    auto t1 = create_task(coro("c1"));
    auto t2 = create_task(coro("c2"));
    auto t3 = create_task(coro("c3"));
    co_await t1;
    co_await t2;
    co_await t3;
    EXPECT_EQ(result, (std::vector<std::string>{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"}));
}

// test_acquire_fifo_order_2: t2 releases and re-acquires while t3 holds a handed permit that
// it has not used yet; t2 must queue behind it (no barging, SM2).
CORIO_TEST(Semaphore, AcquireFifoOrder2) {
    Semaphore sem(1);
    std::vector<int> result;
    auto c2 = [&]() -> Coro<bool> {
        SemaphoreGuard g = co_await sem.acquire();
        g.dismiss();
        result.push_back(2);
        sem.release();
        SemaphoreGuard again = co_await sem.acquire();
        again.dismiss();
        result.push_back(4);
        co_return true;
    };
    auto t1 = create_task(acquire_and_record(sem, result, 1));
    auto t2 = create_task(c2());
    auto t3 = create_task(acquire_and_record(sem, result, 3));
    co_await sleep(0s);
    sem.release();
    sem.release();
    co_await t1;
    co_await t2;
    co_await t3;
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3, 4}));
}

// test_acquire_fifo_order_3: a cancelled waiter is skipped, the others keep their order.
CORIO_TEST(Semaphore, AcquireFifoOrder3) {
    Semaphore sem(0);
    std::vector<int> result;
    auto t1 = create_task(acquire_and_record(sem, result, 1));
    auto t2 = create_task(acquire_and_record(sem, result, 2));
    auto t3 = create_task(acquire_and_record(sem, result, 3));
    co_await sleep(0s);
    t1.cancel();
    co_await sleep(0s);
    sem.release();
    sem.release();
    EXPECT_TRUE(co_await ended_cancelled(t1));
    co_await t2;
    co_await t3;
    EXPECT_EQ(result, (std::vector<int>{2, 3}));
}

// test_acquire_fifo_order_4: when the handed waiter runs, it hands the free permits to the
// tasks that had to queue behind it.
CORIO_TEST(Semaphore, AcquireFifoOrder4) {
    Semaphore sem(0);
    std::vector<int> result;
    Task<bool> t4;
    auto c4 = [&]() -> Coro<bool> {
        result.push_back(4);
        co_return true;
    };
    auto c1 = [&]() -> Coro<bool> {
        EXPECT_EQ(sem.value(), 0);
        SemaphoreGuard g = co_await sem.acquire();
        g.dismiss();
        EXPECT_EQ(sem.value(), 0);  // every waiting task has been handed a permit
        t4 = create_task(c4());     // runs after c3, not c2
        result.push_back(1);
        co_return true;
    };
    auto c2 = [&]() -> Coro<bool> {
        sem.release();
        sem.release();
        sem.release();
        EXPECT_EQ(sem.value(), 2);
        EXPECT_TRUE(sem.locked());  // c1 has not run yet
        SemaphoreGuard g = co_await sem.acquire();
        g.dismiss();
        result.push_back(2);
        co_return true;
    };
    auto c3 = [&]() -> Coro<bool> {
        SemaphoreGuard g = co_await sem.acquire();
        g.dismiss();
        EXPECT_TRUE(sem.locked());
        result.push_back(3);
        co_return true;
    };
    auto t1 = create_task(c1());
    auto t2 = create_task(c2());
    auto t3 = create_task(c3());
    co_await sleep(0s);
    EXPECT_EQ(sem.value(), 2);
    co_await sleep(0s);
    co_await t1;
    co_await t2;
    co_await t3;
    co_await t4;
    EXPECT_EQ(result, (std::vector<int>{1, 2, 3, 4}));
}

// P6/SM4: a waiter handed a permit and cancelled before it runs passes the permit to the next
// waiter in line, ahead of any newcomer.
CORIO_TEST(Semaphore, CancelAfterHandOffPassesPermitOn) {
    Semaphore sem(1);
    std::vector<int> result;
    SemaphoreGuard held = co_await sem.acquire();
    auto t1 = create_task(acquire_and_record(sem, result, 1));
    auto t2 = create_task(acquire_and_record(sem, result, 2));
    co_await sleep(0s);
    held.release();  // handed to t1
    t1.cancel();
    auto t3 = create_task(acquire_and_record(sem, result, 3));  // a newcomer
    EXPECT_TRUE(co_await ended_cancelled(t1));
    co_await t2;
    EXPECT_EQ(result, std::vector<int>{2});
    EXPECT_FALSE(t3.done());
    EXPECT_EQ(sem.value(), 0);
    sem.release();  // t2's permit
    co_await t3;
    EXPECT_EQ(result, (std::vector<int>{2, 3}));
    sem.release();
    EXPECT_EQ(sem.value(), 1);
}

// A cancel requested before acquire() on a locked semaphore is delivered there: no queueing.
CORIO_TEST(Semaphore, PendingCancelDeliveredAtAcquire) {
    Semaphore sem(0);
    auto body = [&]() -> Coro<> {
        current_task().cancel();
        SemaphoreGuard g = co_await sem.acquire();
        ADD_FAILURE() << "acquired from an empty semaphore";
    };
    auto t = create_task(body());
    EXPECT_TRUE(co_await ended_cancelled(t));
    sem.release();
    EXPECT_EQ(sem.value(), 1);  // nobody was in line to take it
}

// wait_for(sem.acquire(), t): on expiry the waiter leaves without a permit; the permit given
// back afterwards is free again.
CORIO_TEST(Semaphore, WaitForAcquireTimesOutWithoutTakingAPermit) {
    corio::testing::MockClock clock;
    Semaphore sem(1);
    std::optional<SemaphoreGuard> held;
    {
        Coro<SemaphoreGuard> first = wait_for(sem.acquire(), 1s);
        held.emplace(co_await std::move(first));
    }
    EXPECT_TRUE(sem.locked());
    bool timed_out = false;
    try {
        Coro<SemaphoreGuard> second = wait_for(sem.acquire(), 1s);
        SemaphoreGuard g = co_await std::move(second);
    } catch (const TimeoutError&) {
        timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    held.reset();
    EXPECT_FALSE(sem.locked());
    co_return;
}

// asyncio's bare form, as the GUIDE writes it: the permit stays taken until release().
CORIO_TEST(Semaphore, BareAcquireWithDismissKeepsThePermitUntilRelease) {
    Semaphore sem(1);
    (co_await sem.acquire()).dismiss();
    EXPECT_TRUE(sem.locked());
    EXPECT_EQ(sem.value(), 0);
    sem.release();
    EXPECT_EQ(sem.value(), 1);
}
