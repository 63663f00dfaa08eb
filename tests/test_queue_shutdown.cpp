// Queue task_done/join and shutdown: CPython's test_asyncio/test_queues.py _QueueJoinTestMixin
// and _QueueShutdownTestMixin (rules Q5 - Q7), and queues destroyed under their waiters.
#include <corio/queue.hpp>
#include <corio/testing.hpp>

#include "queue_support.hpp"

#include <memory>
#include <vector>

using namespace corio;
using namespace corio_test;

// --- Q5: task_done and join -----------------------------------------------------------------

// _QueueJoinTestMixin.test_task_done_underflow
CORIO_TEST(QueueJoin, TaskDoneUnderflow) {
    Queue<int> q;
    EXPECT_THROW(q.task_done(), std::logic_error);
    q.put_nowait(1);
    q.task_done();
    EXPECT_THROW(q.task_done(), std::logic_error);
    co_return;
}

namespace {
template <class Q>
Coro<> summing_worker(Q& q, const bool& running, long& accumulator) {
    while (running) {
        int item = co_await q.get();
        accumulator += item;
        q.task_done();
    }
}
}  // namespace

// _QueueJoinTestMixin.test_task_done, for all three kinds
template <class Q>
Coro<> task_done_scenario() {
    Q q;
    for (int i = 0; i < 100; ++i) q.put_nowait(i);
    long accumulator = 0;
    bool running = true;
    std::vector<Task<>> workers;
    for (int i = 0; i < 2; ++i) workers.push_back(create_task(summing_worker(q, running, accumulator)));
    co_await q.join();
    EXPECT_EQ(accumulator, 4950);
    running = false;
    for (std::size_t i = 0; i < workers.size(); ++i) q.put_nowait(0);
    for (auto& w : workers) co_await w;
}

CORIO_TEST(QueueJoin, TaskDone) { co_await task_done_scenario<Queue<int>>(); }
CORIO_TEST(QueueJoin, TaskDoneLifo) { co_await task_done_scenario<LifoQueue<int>>(); }
CORIO_TEST(QueueJoin, TaskDonePriority) { co_await task_done_scenario<PriorityQueue<int>>(); }

// _QueueJoinTestMixin.test_join_empty_queue
CORIO_TEST(QueueJoin, JoinEmptyQueue) {
    Queue<int> q;
    co_await q.join();
    co_await q.join();
}

// join() returns only with the last task_done(), and every joiner is released.
CORIO_TEST(QueueJoin, JoinWaitsForTheLastTaskDone) {
    Queue<int> q;
    q.put_nowait(1);
    q.put_nowait(2);
    Task<> j1 = create_task(join_one(q));
    Task<> j2 = create_task(join_one(q));
    co_await sleep(0s);
    (void)q.get_nowait();
    q.task_done();
    co_await sleep(0s);
    EXPECT_FALSE(j1.done());
    (void)q.get_nowait();
    q.task_done();
    co_await sleep(0s);
    EXPECT_TRUE(j1.done());
    EXPECT_TRUE(j2.done());
    co_await j1;
    co_await j2;
}

// --- Q6 / Q7: shutdown ----------------------------------------------------------------------

// _QueueShutdownTestMixin.test_shutdown_empty
CORIO_TEST(QueueShutdown, ShutdownEmpty) {
    Queue<int> q;
    Task<int> get_task = create_task(get_one(q));
    co_await sleep(0s);
    q.shutdown();
    EXPECT_EQ(q.qsize(), 0u);
    co_await q.join();
    co_await sleep(0s);
    EXPECT_TRUE(get_task.done());
    CO_EXPECT_FAILS(QueueShutDown, get_task);
    CO_EXPECT_THROWS(QueueShutDown, q.put(1));
    EXPECT_THROW(q.put_nowait(1), QueueShutDown);
    CO_EXPECT_THROWS(QueueShutDown, q.get());
    EXPECT_THROW(q.get_nowait(), QueueShutDown);
}

// A getter and a putter woken by shutdown() resume after the queue is gone: they are told
// QueueShutDown (they used to read the freed queue).
CORIO_TEST(QueueShutdown, WaitersWokenByShutdownOutliveTheQueue) {
    auto q = std::make_unique<Queue<int>>(1);
    auto empty = std::make_unique<Queue<int>>();
    q->put_nowait(1);
    Task<> putter = create_task(put_one(*q, 2));
    Task<int> getter = create_task(get_one(*empty));
    co_await sleep(0s);
    q->shutdown();
    empty->shutdown();
    q.reset();
    empty.reset();
    CO_EXPECT_FAILS(QueueShutDown, putter);
    CO_EXPECT_FAILS(QueueShutDown, getter);
}

// _QueueShutdownTestMixin.test_shutdown_nonempty
CORIO_TEST(QueueShutdown, ShutdownNonempty) {
    Queue<int> q(1);
    q.put_nowait(1);
    Task<> join_task = create_task(join_one(q));
    Task<> put_task = create_task(put_one(q, 2));
    co_await sleep(0s);
    EXPECT_FALSE(put_task.done());
    q.shutdown();
    EXPECT_EQ(q.qsize(), 1u);
    co_await sleep(0s);
    EXPECT_TRUE(put_task.done());
    CO_EXPECT_FAILS(QueueShutDown, put_task);
    CO_EXPECT_AWAIT_EQ(q.get(), 1);
    co_await sleep(0s);
    EXPECT_FALSE(join_task.done());
    CO_EXPECT_THROWS(QueueShutDown, q.put(1));
    EXPECT_THROW(q.put_nowait(1), QueueShutDown);
    CO_EXPECT_THROWS(QueueShutDown, q.get());
    EXPECT_THROW(q.get_nowait(), QueueShutDown);
    q.task_done();
    co_await sleep(0s);
    EXPECT_TRUE(join_task.done());
    co_await join_task;
    EXPECT_THROW(q.task_done(), std::logic_error);
}

// _QueueShutdownTestMixin.test_shutdown_immediate
CORIO_TEST(QueueShutdown, ShutdownImmediate) {
    Queue<int> q;
    q.put_nowait(1);
    Task<> join_task = create_task(join_one(q));
    q.shutdown(true);
    EXPECT_EQ(q.qsize(), 0u);
    co_await sleep(0s);
    EXPECT_TRUE(join_task.done());
    co_await join_task;
    CO_EXPECT_THROWS(QueueShutDown, q.put(1));
    EXPECT_THROW(q.put_nowait(1), QueueShutDown);
    CO_EXPECT_THROWS(QueueShutDown, q.get());
    EXPECT_THROW(q.get_nowait(), QueueShutDown);
    EXPECT_THROW(q.task_done(), std::logic_error);
}

// _QueueShutdownTestMixin.test_shutdown_immediate_with_unfinished
CORIO_TEST(QueueShutdown, ShutdownImmediateWithUnfinished) {
    Queue<int> q;
    q.put_nowait(1);
    q.put_nowait(2);
    Task<> join_task = create_task(join_one(q));
    CO_EXPECT_AWAIT_EQ(q.get(), 1);
    q.shutdown(true);  // unfinished: 2 -> 1
    EXPECT_EQ(q.qsize(), 0u);
    co_await sleep(0s);
    EXPECT_FALSE(join_task.done());
    CO_EXPECT_THROWS(QueueShutDown, q.put(1));
    EXPECT_THROW(q.put_nowait(1), QueueShutDown);
    CO_EXPECT_THROWS(QueueShutDown, q.get());
    EXPECT_THROW(q.get_nowait(), QueueShutDown);
    q.task_done();
    EXPECT_THROW(q.task_done(), std::logic_error);
    co_await sleep(0s);
    EXPECT_TRUE(join_task.done());
    co_await join_task;
}

// Q6: shutdown wakes every blocked getter and putter, not just the first.
CORIO_TEST(QueueShutdown, WakesEveryBlockedGetterAndPutter) {
    Queue<int> empty;
    Task<int> g1 = create_task(get_one(empty));
    Task<int> g2 = create_task(get_one(empty));
    Queue<int> full(1);
    full.put_nowait(1);
    Task<> p1 = create_task(put_one(full, 2));
    Task<> p2 = create_task(put_one(full, 3));
    co_await sleep(0s);
    empty.shutdown();
    full.shutdown();
    CO_EXPECT_FAILS(QueueShutDown, g1);
    CO_EXPECT_FAILS(QueueShutDown, g2);
    CO_EXPECT_FAILS(QueueShutDown, p1);
    CO_EXPECT_FAILS(QueueShutDown, p2);
    EXPECT_EQ(full.get_nowait(), 1);  // remaining items are still served
    EXPECT_THROW(full.get_nowait(), QueueShutDown);
}

// A putter granted a slot before shutdown() still fails (asyncio re-checks after waking), and
// its slot is released.
CORIO_TEST(QueueShutdown, GrantedPutterFailsAfterShutdown) {
    Queue<int> q(1);
    q.put_nowait(1);
    Task<> p = create_task(put_one(q, 2));
    co_await sleep(0s);
    EXPECT_EQ(q.get_nowait(), 1);
    q.shutdown();
    CO_EXPECT_FAILS(QueueShutDown, p);
    EXPECT_FALSE(q.full());
    EXPECT_TRUE(q.empty());
    q.task_done();
}

// Items handed to getters that have not resumed yet are drained by an immediate shutdown like
// those in the store (asyncio leaves them in the queue until the getter runs, so its drain takes
// them): each getter is told QueueShutDown, or CancelledError if it was cancelled, and each item
// counts as done.
CORIO_TEST(QueueShutdown, ImmediateShutdownAndHandedItems) {
    Queue<int> q;
    Task<int> drained = create_task(get_one(q));
    Task<int> cancelled = create_task(get_one(q));
    co_await sleep(0s);
    q.put_nowait(1);
    q.put_nowait(2);
    Task<> join_task = create_task(join_one(q));
    q.shutdown(true);
    cancelled.cancel();
    CO_EXPECT_FAILS(QueueShutDown, drained);
    CO_EXPECT_FAILS(CancelledError, cancelled);
    co_await join_task;
    EXPECT_THROW(q.task_done(), std::logic_error);
    EXPECT_THROW(q.get_nowait(), QueueShutDown);
}

// Non-immediate shutdown: an item given back by a cancelled getter is still served.
CORIO_TEST(QueueShutdown, ItemGivenBackAfterShutdownIsStillServed) {
    Queue<int> q;
    Task<int> g = create_task(get_one(q));
    co_await sleep(0s);
    q.put_nowait(1);
    q.shutdown();
    g.cancel();
    CO_EXPECT_FAILS(CancelledError, g);
    CO_EXPECT_AWAIT_EQ(q.get(), 1);
    CO_EXPECT_THROWS(QueueShutDown, q.get());
}

// --- Lifetime ---------------------------------------------------------------------------------

// A queue destroyed under its waiters leaves them safe to cancel or to resume: a getter
// already handed an item keeps it, one handed an item and then cancelled drops it, a waiting
// getter can still be cancelled, and a putter granted a slot gets QueueShutDown.
CORIO_TEST(QueueLifetime, QueueDestroyedUnderItsWaiters) {
    Task<int> handed, handed_then_cancelled, waiting;
    Task<> granted;
    {
        Queue<int> gq;
        Queue<int> pq(1);
        handed = create_task(get_one(gq));
        handed_then_cancelled = create_task(get_one(gq));
        waiting = create_task(get_one(gq));
        pq.put_nowait(6);
        granted = create_task(put_one(pq, 7));
        co_await sleep(0s);
        gq.put_nowait(5);
        gq.put_nowait(8);
        EXPECT_EQ(pq.get_nowait(), 6);  // grants `granted` its slot
    }
    handed_then_cancelled.cancel();
    waiting.cancel();
    CO_EXPECT_AWAIT_EQ(handed, 5);
    CO_EXPECT_FAILS(CancelledError, handed_then_cancelled);
    CO_EXPECT_FAILS(CancelledError, waiting);
    CO_EXPECT_FAILS(QueueShutDown, granted);
}
