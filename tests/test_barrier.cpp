// corio::Barrier, ported from CPython's Lib/test/test_asyncio/test_locks.py (BarrierTests),
// asyncio-rules.md BR1-BR4.
#include <corio/testing.hpp>
#include <corio/barrier.hpp>

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;

namespace {

constexpr int N = 5;

// gather_tasks(n, coro): runs n copies of `make()` as tasks and awaits them all, in order.
template <class F>
Coro<std::vector<int>> gather_tasks(int n, F& make) {
    std::vector<Task<int>> tasks;
    for (int i = 0; i < n; ++i) tasks.push_back(create_task(make()));
    std::vector<int> results;
    for (auto& t : tasks) results.push_back(co_await t);
    co_return results;
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

std::vector<int> iota(int n) {
    std::vector<int> v(n);
    for (int i = 0; i < n; ++i) v[i] = i;
    return v;
}

}  // namespace

// test_barrier_parties
CORIO_TEST(Barrier, PartiesMustBePositive) {
    EXPECT_THROW(Barrier(0), std::invalid_argument);
    EXPECT_THROW(Barrier(-4), std::invalid_argument);
    Barrier b(N);
    EXPECT_EQ(b.parties(), N);
    EXPECT_EQ(b.n_waiting(), 0);
    EXPECT_FALSE(b.broken());
    co_return;
}

// test_context_manager / test_filling_tasks_check_return_value: indices are unique, 0..N-1.
CORIO_TEST(Barrier, WaitReturnsUniqueIndices) {
    Barrier barrier(N);
    std::vector<int> first;
    auto coro = [&]() -> Coro<int> {
        first.push_back(co_await barrier.wait());
        co_return co_await barrier.wait();
    };
    std::vector<int> second = co_await gather_tasks(N, coro);
    std::sort(first.begin(), first.end());
    std::sort(second.begin(), second.end());
    EXPECT_EQ(first, iota(N));
    EXPECT_EQ(second, iota(N));
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// The exact order: the last arrival goes on at once with the top index; the others follow in
// arrival order on the next tick.
CORIO_TEST(Barrier, ReleaseOrder) {
    Barrier barrier(3);
    std::vector<int> order;
    auto coro = [&]() -> Coro<int> {
        int i = co_await barrier.wait();
        order.push_back(i);
        co_return i;
    };
    std::vector<int> r = co_await gather_tasks(3, coro);
    EXPECT_EQ(r, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(order, (std::vector<int>{2, 0, 1}));
}

// test_filling_one_task / test_filling_one_task_twice
CORIO_TEST(Barrier, FillingOneTask) {
    Barrier barrier(1);
    EXPECT_EQ(co_await barrier.wait(), 0);
    auto t1 = create_task(barrier.wait());
    co_await sleep(0s);
    EXPECT_EQ(barrier.n_waiting(), 0);
    auto t2 = create_task(barrier.wait());
    co_await sleep(0s);
    EXPECT_TRUE(t1.done() && t2.done());
    EXPECT_EQ(t1.result(), t2.result());
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// test_filling_task_by_task
CORIO_TEST(Barrier, FillingTaskByTask) {
    Barrier barrier(3);
    auto t1 = create_task(barrier.wait());
    co_await sleep(0s);
    EXPECT_EQ(barrier.n_waiting(), 1);
    auto t2 = create_task(barrier.wait());
    co_await sleep(0s);
    EXPECT_EQ(barrier.n_waiting(), 2);
    auto t3 = create_task(barrier.wait());
    co_await sleep(0s);
    EXPECT_EQ(barrier.n_waiting(), 0);  // draining
    EXPECT_EQ(co_await t1, 0);
    EXPECT_EQ(co_await t2, 1);
    EXPECT_EQ(co_await t3, 2);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// test_filling_tasks_wait_twice
CORIO_TEST(Barrier, FillingTasksWaitTwice) {
    Barrier barrier(N);
    std::vector<bool> results;
    auto coro = [&]() -> Coro<int> {
        (void)co_await barrier.wait();
        results.push_back(true);
        (void)co_await barrier.wait();
        results.push_back(false);
        co_return 0;
    };
    (void)co_await gather_tasks(N, coro);
    EXPECT_EQ(int(results.size()), 2 * N);
    EXPECT_EQ(std::count(results.begin(), results.end(), true), N);
    // All of round one come out before any of round two.
    EXPECT_TRUE(std::all_of(results.begin(), results.begin() + N, [](bool b) { return b; }));
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// test_blocking_tasks_while_draining: tasks arriving again while the round drains wait for
// the drain to finish and count in the next round only.
CORIO_TEST(Barrier, BlockingTasksWhileDraining) {
    const int rewait = 2;
    Barrier barrier(N);
    Barrier barrier_nowaiting(N - rewait);
    int rewait_n = rewait;
    auto coro = [&]() -> Coro<int> {
        (void)co_await barrier.wait();
        if (rewait_n > 0) {
            --rewait_n;
            (void)co_await barrier.wait();
        } else {
            (void)co_await barrier_nowaiting.wait();
            (void)co_await barrier.wait();
        }
        co_return 0;
    };
    (void)co_await gather_tasks(N, coro);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// test_filling_tasks_cancel_one (BR3): a task cancelled while filling leaves the barrier.
CORIO_TEST(Barrier, FillingTasksCancelOne) {
    Barrier barrier(3);
    int passed = 0;
    auto coro = [&]() -> Coro<> {
        (void)co_await barrier.wait();
        ++passed;
    };
    auto t1 = create_task(coro());
    co_await sleep(0s);
    EXPECT_EQ(barrier.n_waiting(), 1);
    auto t2 = create_task(coro());
    co_await sleep(0s);
    EXPECT_EQ(barrier.n_waiting(), 2);

    t1.cancel();
    co_await sleep(0s);
    EXPECT_EQ(barrier.n_waiting(), 1);
    EXPECT_TRUE(co_await ended_cancelled(t1));

    auto t3 = create_task(coro());
    co_await sleep(0s);
    EXPECT_EQ(barrier.n_waiting(), 2);
    auto t4 = create_task(coro());
    co_await t2;
    co_await t3;
    co_await t4;
    EXPECT_EQ(passed, 3);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// A task released by the barrier but cancelled before it runs gets the cancellation; the
// others pass and the round still drains, so the barrier stays usable.
CORIO_TEST(Barrier, CancelWhileDraining) {
    Barrier barrier(3);
    auto t1 = create_task(barrier.wait());
    auto t2 = create_task(barrier.wait());
    co_await sleep(0s);
    auto t3 = create_task(barrier.wait());
    co_await sleep(0s);  // t3 trips the barrier; t1 and t2 are released
    t1.cancel();
    EXPECT_TRUE(co_await ended_cancelled(t1));
    EXPECT_EQ(co_await t2, 1);
    EXPECT_EQ(co_await t3, 2);
    EXPECT_FALSE(barrier.broken());

    auto again = [&]() -> Coro<int> { co_return co_await barrier.wait(); };
    std::vector<int> r = co_await gather_tasks(3, again);
    EXPECT_EQ(r, (std::vector<int>{0, 1, 2}));
}

// test_reset_barrier
CORIO_TEST(Barrier, ResetEmptyBarrier) {
    Barrier barrier(1);
    auto t = create_task(barrier.reset());
    co_await sleep(0s);
    EXPECT_TRUE(t.done());
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// test_reset_barrier_while_tasks_waiting (BR4): waiters get BrokenBarrierError, then the
// barrier is usable again.
CORIO_TEST(Barrier, ResetWhileTasksWaiting) {
    Barrier barrier(N);
    int broken = 0;
    auto coro = [&]() -> Coro<int> {
        try {
            (void)co_await barrier.wait();
        } catch (const BrokenBarrierError&) {
            ++broken;
        }
        co_return 0;
    };
    std::vector<Task<int>> tasks;
    for (int i = 0; i < N - 1; ++i) tasks.push_back(create_task(coro()));
    co_await sleep(0s);
    EXPECT_EQ(barrier.n_waiting(), N - 1);
    auto r = create_task(barrier.reset());
    for (auto& t : tasks) co_await t;
    co_await r;
    EXPECT_EQ(broken, N - 1);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// test_reset_barrier_while_tasks_waiting_and_waiting_again: the broken tasks wait again and,
// with one newcomer, fill the next round.
CORIO_TEST(Barrier, ResetWhileTasksWaitingThenWaitAgain) {
    Barrier barrier(N);
    int broken = 0;
    int passed = 0;
    auto coro1 = [&]() -> Coro<int> {
        try {
            (void)co_await barrier.wait();
        } catch (const BrokenBarrierError&) {
            ++broken;
        }
        (void)co_await barrier.wait();  // Python's `finally: await barrier.wait()`
        ++passed;
        co_return 0;
    };
    auto coro2 = [&]() -> Coro<int> {
        (void)co_await barrier.wait();
        ++passed;
        co_return 0;
    };
    std::vector<Task<int>> tasks;
    for (int i = 0; i < N - 1; ++i) tasks.push_back(create_task(coro1()));
    auto r = create_task(barrier.reset());
    co_await sleep(0s);
    auto last = create_task(coro2());
    for (auto& t : tasks) co_await t;
    co_await last;
    co_await r;
    EXPECT_EQ(broken, N - 1);
    EXPECT_EQ(passed, N);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// test_reset_barrier_while_tasks_draining: the last task out of round one resets; as nobody
// counts in the barrier at that moment, nobody is broken.
CORIO_TEST(Barrier, ResetAfterDrainBreaksNobody) {
    Barrier barrier(N);
    int count = 0;
    int second_ok = 0;
    int second_broken = 0;
    int third = 0;
    auto coro = [&]() -> Coro<int> {
        (void)co_await barrier.wait();
        if (++count == N) {
            co_await barrier.reset();
            (void)co_await barrier.wait();
        } else {
            try {
                (void)co_await barrier.wait();
                ++second_ok;
            } catch (const BrokenBarrierError&) {
                ++second_broken;
            }
        }
        (void)co_await barrier.wait();
        ++third;
        co_return 0;
    };
    (void)co_await gather_tasks(N, coro);
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(second_ok, N - 1);
    EXPECT_EQ(second_broken, 0);
    EXPECT_EQ(third, N);
    EXPECT_EQ(barrier.n_waiting(), 0);
}

// test_reset_barrier_when_tasks_half_draining_half_blocking
CORIO_TEST(Barrier, ResetWhenHalfDrainingHalfBlocking) {
    Barrier barrier(N);
    const int blocking_tasks = N / 2;
    int count = 0;
    int results1 = 0;
    int results2 = 0;
    auto coro = [&]() -> Coro<int> {
        bool again = false;
        try {
            (void)co_await barrier.wait();
        } catch (const BrokenBarrierError&) {
            ++results1;  // still waiting when the reset came
            again = true;
        }
        if (again) {
            (void)co_await barrier.wait();
            co_return 0;
        }
        if (++count > blocking_tasks) {
            co_await barrier.reset();
            (void)co_await barrier.wait();
        } else {
            try {
                (void)co_await barrier.wait();
            } catch (const BrokenBarrierError&) {
                ++results2;  // blocked tasks are not broken by the reset
            }
        }
        co_return 0;
    };
    (void)co_await gather_tasks(N, coro);
    EXPECT_EQ(results1, blocking_tasks);
    EXPECT_EQ(results2, 0);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
}

// test_abort_barrier
CORIO_TEST(Barrier, AbortBreaksForGood) {
    Barrier barrier(1);
    auto t = create_task(barrier.abort());
    co_await sleep(0s);
    EXPECT_TRUE(t.done());
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_TRUE(barrier.broken());
    EXPECT_THROW((void)co_await barrier.wait(), BrokenBarrierError);
}

// test_abort_barrier_when_tasks_half_draining_half_blocking
CORIO_TEST(Barrier, AbortWhenHalfDrainingHalfBlocking) {
    Barrier barrier(N);
    const int blocking_tasks = N / 2;
    int count = 0;
    int results1 = 0;
    int results2 = 0;
    auto coro = [&]() -> Coro<int> {
        try {
            (void)co_await barrier.wait();
        } catch (const BrokenBarrierError&) {
            ++results1;  // released, but not out before the abort
            co_return 0;
        }
        if (++count > blocking_tasks) {
            co_await barrier.abort();
        } else {
            try {
                (void)co_await barrier.wait();
            } catch (const BrokenBarrierError&) {
                ++results2;  // blocked while draining
            }
        }
        co_return 0;
    };
    (void)co_await gather_tasks(N, coro);
    EXPECT_TRUE(barrier.broken());
    EXPECT_EQ(results1, blocking_tasks);
    EXPECT_EQ(results2, N - blocking_tasks - 1);
    EXPECT_EQ(barrier.n_waiting(), 0);
}

// test_abort_barrier_when_exception
CORIO_TEST(Barrier, AbortWhenException) {
    Barrier barrier(N);
    int results1 = 0;
    int results2 = 0;
    auto coro = [&]() -> Coro<int> {
        bool failed = false;
        try {
            int i = co_await barrier.wait();
            if (i == N / 2) throw std::runtime_error("boom");
            (void)co_await barrier.wait();
            ++results1;
        } catch (const BrokenBarrierError&) {
            ++results2;
        } catch (const std::runtime_error&) {
            failed = true;
        }
        if (failed) co_await barrier.abort();
        co_return 0;
    };
    (void)co_await gather_tasks(N, coro);
    EXPECT_TRUE(barrier.broken());
    EXPECT_EQ(results1, 0);
    EXPECT_EQ(results2, N - 1);
    EXPECT_EQ(barrier.n_waiting(), 0);
}

// test_abort_barrier_when_exception_then_resetting: reset() mends an aborted barrier.
CORIO_TEST(Barrier, AbortThenReset) {
    Barrier barrier1(N);
    Barrier barrier2(N);
    int results1 = 0;
    int results2 = 0;
    int results3 = 0;
    auto coro = [&]() -> Coro<int> {
        bool failed = false;
        try {
            int i = co_await barrier1.wait();
            if (i == N / 2) throw std::runtime_error("boom");
            (void)co_await barrier1.wait();
            ++results1;
        } catch (const BrokenBarrierError&) {
            ++results2;
        } catch (const std::runtime_error&) {
            failed = true;
        }
        if (failed) co_await barrier1.abort();
        // Everyone leaves barrier1 before the reset, and nobody enters it before.
        int i = co_await barrier2.wait();
        if (i == N / 2) co_await barrier1.reset();
        (void)co_await barrier2.wait();
        (void)co_await barrier1.wait();
        ++results3;
        co_return 0;
    };
    (void)co_await gather_tasks(N, coro);
    EXPECT_FALSE(barrier1.broken());
    EXPECT_EQ(results1, 0);
    EXPECT_EQ(results2, N - 1);
    EXPECT_EQ(results3, N);
    EXPECT_EQ(barrier1.n_waiting(), 0);
}
