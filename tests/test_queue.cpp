// Queue, PriorityQueue, LifoQueue: CPython's test_asyncio/test_queues.py (rules Q1-Q7), plus
// the hand-off cases asyncio cannot express (a waiter cancelled between being woken and
// running) and stress runs that check no item is lost or duplicated.
#include <corio/queue.hpp>
#include <corio/testing.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <vector>

using namespace corio;

namespace {

// One get or put as a task, like asyncio's create_task(q.get()).
template <class Q>
Coro<typename Q::value_type> get_one(Q& q) {
    co_return co_await q.get();
}
template <class Q>
Coro<> put_one(Q& q, typename Q::value_type v) {
    co_await q.put(std::move(v));
}
template <class Q>
Coro<> join_one(Q& q) {
    co_await q.join();
}

// True when awaiting `t` throws E; retrieves the task's outcome either way.
template <class E, class T>
Coro<bool> fails_with(Task<T> t) {
    try {
        co_await std::move(t);
    } catch (const E&) {
        co_return true;
    } catch (...) {
    }
    co_return false;
}

template <class Q>
std::vector<typename Q::value_type> drain(Q& q) {
    std::vector<typename Q::value_type> out;
    while (!q.empty()) out.push_back(q.get_nowait());
    return out;
}

}  // namespace

#define CO_EXPECT_THROWS(E, ...)                                    \
    do {                                                            \
        bool corio_threw_ = false;                                  \
        try {                                                       \
            (void)(co_await __VA_ARGS__);                           \
        } catch (const E&) {                                        \
            corio_threw_ = true;                                    \
        }                                                           \
        EXPECT_TRUE(corio_threw_) << #__VA_ARGS__ " did not throw " #E; \
    } while (0)

// Named locals rather than co_await inside EXPECT_*: compiler-bugs.md G2.
#define CO_EXPECT_FAILS(E, task)                                           \
    do {                                                                   \
        const bool corio_failed_ = co_await fails_with<E>(task);          \
        EXPECT_TRUE(corio_failed_) << #task " did not fail with " #E;      \
    } while (0)
#define CO_EXPECT_AWAIT_EQ(awaitable, expected)      \
    do {                                             \
        auto corio_value_ = co_await awaitable;      \
        EXPECT_EQ(corio_value_, expected);           \
    } while (0)

// --- Q1 / Q2: size and order ---------------------------------------------------------------

namespace {
Coro<bool> put_three(Queue<int>& q, std::vector<int>& have_been_put) {
    for (int i = 0; i < 3; ++i) {
        co_await q.put(i);
        have_been_put.push_back(i);
    }
    co_return true;
}
}  // namespace

// QueueBasicTests.test_maxsize
CORIO_TEST(QueueBasic, MaxsizeBlocksThePutterAfterTwoItems) {
    Queue<int> q(2);
    EXPECT_EQ(q.maxsize(), 2);
    std::vector<int> have_been_put;
    Task<bool> t = create_task(put_three(q, have_been_put));
    for (int i = 0; i < 2; ++i) co_await sleep(0s);
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1}));
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.get_nowait(), 0);
    CO_EXPECT_AWAIT_EQ(t, true);
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_EQ(q.get_nowait(), 2);
}

// QueueBasicTests.test_empty
CORIO_TEST(QueueBasic, Empty) {
    Queue<int> q;
    EXPECT_TRUE(q.empty());
    q.put_nowait(1);
    EXPECT_FALSE(q.empty());
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_TRUE(q.empty());
    co_return;
}

// QueueBasicTests.test_full
CORIO_TEST(QueueBasic, Full) {
    Queue<int> unbounded;
    EXPECT_FALSE(unbounded.full());
    Queue<int> q(1);
    q.put_nowait(1);
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.qsize(), 1u);
    co_return;
}

// Q1: maxsize <= 0 is unbounded.
CORIO_TEST(QueueBasic, ZeroOrNegativeMaxsizeIsUnbounded) {
    Queue<int> zero(0);
    Queue<int> negative(-5);
    for (int i = 0; i < 1000; ++i) {
        zero.put_nowait(i);
        co_await negative.put(i);
    }
    EXPECT_FALSE(zero.full());
    EXPECT_FALSE(negative.full());
    EXPECT_EQ(zero.qsize(), 1000u);
    EXPECT_EQ(negative.qsize(), 1000u);
    EXPECT_EQ(negative.maxsize(), -5);
}

// QueueBasicTests.test_order
CORIO_TEST(QueueBasic, FifoOrder) {
    Queue<int> q;
    for (int i : {1, 3, 2}) q.put_nowait(i);
    EXPECT_EQ(drain(q), (std::vector<int>{1, 3, 2}));
    co_return;
}

// LifoQueueTests.test_order
CORIO_TEST(LifoQueue, Order) {
    LifoQueue<int> q;
    for (int i : {1, 3, 2}) q.put_nowait(i);
    EXPECT_EQ(drain(q), (std::vector<int>{2, 3, 1}));
    co_return;
}

// PriorityQueueTests.test_order
CORIO_TEST(PriorityQueue, Order) {
    PriorityQueue<int> q;
    for (int i : {1, 3, 2}) q.put_nowait(i);
    EXPECT_EQ(drain(q), (std::vector<int>{1, 2, 3}));
    co_return;
}

CORIO_TEST(PriorityQueue, CustomCompare) {
    PriorityQueue<int, std::greater<int>> q;
    for (int i : {5, 1, 4, 2, 3}) q.put_nowait(i);
    EXPECT_EQ(drain(q), (std::vector<int>{5, 4, 3, 2, 1}));
    co_return;
}

// Items from blocked putters take their place in the heap once they are in.
CORIO_TEST(PriorityQueue, BlockedPutsJoinTheHeap) {
    PriorityQueue<int> q(3);
    for (int i : {50, 10, 40}) q.put_nowait(i);
    Task<> p1 = create_task(put_one(q, 30));
    Task<> p2 = create_task(put_one(q, 20));
    co_await sleep(0s);
    EXPECT_EQ(q.get_nowait(), 10);  // grants p1
    EXPECT_EQ(q.get_nowait(), 40);  // grants p2
    co_await p1;
    co_await p2;
    EXPECT_EQ(drain(q), (std::vector<int>{20, 30, 50}));
}

// The hand-off: an item given to a waiting getter is that getter's, even if a smaller one
// arrives before it runs (asyncio's woken getter would take the smallest when it runs).
CORIO_TEST(PriorityQueue, WaitingGetterKeepsTheItemHandedToIt) {
    PriorityQueue<int> q;
    Task<int> g = create_task(get_one(q));
    co_await sleep(0s);
    q.put_nowait(5);
    q.put_nowait(1);
    CO_EXPECT_AWAIT_EQ(g, 5);
    EXPECT_EQ(q.get_nowait(), 1);
}

// --- Q1 / Q3: blocking and nonblocking gets -------------------------------------------------

// QueueGetTests.test_nonblocking_get and test_nonblocking_get_exception
CORIO_TEST(QueueGet, NonblockingGetException) {
    Queue<int> q;
    EXPECT_THROW(q.get_nowait(), QueueEmpty);
    q.put_nowait(1);
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_THROW(q.get_nowait(), QueueEmpty);
    co_return;
}

namespace {
Coro<int> get_and_flag(Queue<int>& q, bool& started, bool& finished) {
    started = true;
    int v = co_await q.get();
    finished = true;
    co_return v;
}
}  // namespace

// QueueGetTests.test_blocking_get_wait
CORIO_TEST(QueueGet, BlockingGetWait) {
    Queue<int> q;
    bool started = false, finished = false;
    Task<int> t = create_task(get_and_flag(q, started, finished));
    co_await sleep(0s);
    EXPECT_TRUE(started);
    EXPECT_FALSE(finished);
    q.put_nowait(1);
    co_await sleep(0s);
    EXPECT_TRUE(finished);
    CO_EXPECT_AWAIT_EQ(t, 1);
}

// QueueGetTests.test_blocking_get (timed through the virtual clock)
CORIO_TEST(QueueGet, GetWaitsForADelayedPut) {
    corio::testing::MockClock clock;
    auto t0 = clock.now();
    Queue<int> q;
    Task<int> getter = create_task(get_one(q));
    co_await sleep(5s);
    EXPECT_FALSE(getter.done());
    q.put_nowait(42);
    CO_EXPECT_AWAIT_EQ(getter, 42);
    EXPECT_EQ(clock.seconds_since(t0), 5.0);
}

// QueueGetTests.test_get_with_waiting_putters
CORIO_TEST(QueueGet, GetWithWaitingPutters) {
    Queue<int> q(1);
    Task<> a = create_task(put_one(q, 1));
    Task<> b = create_task(put_one(q, 2));
    co_await sleep(0s);
    CO_EXPECT_AWAIT_EQ(q.get(), 1);
    CO_EXPECT_AWAIT_EQ(q.get(), 2);
    co_await a;
    co_await b;
}

// Q3: waiters form a FIFO line.
CORIO_TEST(QueueGet, GettersAreServedInArrivalOrder) {
    Queue<int> q;
    Task<int> g1 = create_task(get_one(q));
    Task<int> g2 = create_task(get_one(q));
    Task<int> g3 = create_task(get_one(q));
    co_await sleep(0s);
    for (int i : {1, 2, 3}) q.put_nowait(i);
    EXPECT_EQ(q.qsize(), 0u);  // handed over, not queued
    CO_EXPECT_AWAIT_EQ(g1, 1);
    CO_EXPECT_AWAIT_EQ(g2, 2);
    CO_EXPECT_AWAIT_EQ(g3, 3);
}

// The hand-off: an item given to a woken getter is not there for a newcomer to take (asyncio
// would let get_nowait() take it and send the woken getter back to wait).
CORIO_TEST(QueueGet, HandedItemCannotBeStolen) {
    Queue<int> q;
    Task<int> g = create_task(get_one(q));
    co_await sleep(0s);
    q.put_nowait(7);
    EXPECT_TRUE(q.empty());
    EXPECT_THROW(q.get_nowait(), QueueEmpty);
    q.put_nowait(8);
    EXPECT_EQ(q.get_nowait(), 8);
    CO_EXPECT_AWAIT_EQ(g, 7);
}

// QueueGetTests.test_get_cancelled_race
CORIO_TEST(QueueGet, GetCancelledRace) {
    Queue<int> q;
    Task<int> t1 = create_task(get_one(q));
    Task<int> t2 = create_task(get_one(q));
    co_await sleep(0s);
    t1.cancel();
    co_await sleep(0s);
    EXPECT_TRUE(t1.done());
    co_await q.put(100);
    co_await sleep(0s);
    CO_ASSERT_TRUE(t2.done());
    EXPECT_EQ(t2.result(), 100);
    CO_EXPECT_FAILS(CancelledError, t1);
}

// QueueGetTests.test_cancelled_getters_not_being_held_in_self_getters: once cancelled, the
// getter is gone, so a put is queued rather than handed to it.
CORIO_TEST(QueueGet, CancelledGetterIsNotHeld) {
    corio::testing::MockClock clock;
    Queue<int> q(5);
    Task<int> g = create_task(get_one(q));
    co_await sleep(100ms);
    g.cancel();
    CO_EXPECT_FAILS(CancelledError, g);
    q.put_nowait(1);
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(q.get_nowait(), 1);
}

// --- Q1 / Q3: blocking and nonblocking puts -------------------------------------------------

// QueuePutTests.test_nonblocking_put and test_nonblocking_put_exception
CORIO_TEST(QueuePut, NonblockingPutException) {
    Queue<int> q(1);
    q.put_nowait(1);
    EXPECT_THROW(q.put_nowait(2), QueueFull);
    EXPECT_EQ(q.get_nowait(), 1);
    co_return;
}

namespace {
Coro<> put_two_and_flag(Queue<int>& q, bool& started, bool& finished) {
    started = true;
    co_await q.put(1);
    co_await q.put(2);
    finished = true;
}
}  // namespace

// QueuePutTests.test_blocking_put_wait
CORIO_TEST(QueuePut, BlockingPutWait) {
    Queue<int> q(1);
    bool started = false, finished = false;
    Task<> t = create_task(put_two_and_flag(q, started, finished));
    co_await sleep(0s);
    EXPECT_TRUE(started);
    EXPECT_FALSE(finished);
    EXPECT_EQ(q.get_nowait(), 1);
    co_await sleep(0s);
    EXPECT_TRUE(finished);
    co_await t;
    EXPECT_EQ(q.get_nowait(), 2);
}

// QueuePutTests.test_put_with_waiting_getters
CORIO_TEST(QueuePut, PutWithWaitingGetters) {
    Queue<int> q;
    Task<int> t = create_task(get_one(q));
    co_await sleep(0s);
    co_await q.put(5);
    CO_EXPECT_AWAIT_EQ(t, 5);
}

// Q3: blocked putters are served in arrival order.
CORIO_TEST(QueuePut, PuttersAreServedInArrivalOrder) {
    Queue<int> q(1);
    q.put_nowait(0);
    std::vector<Task<>> putters;
    for (int i = 1; i <= 4; ++i) putters.push_back(create_task(put_one(q, i)));
    co_await sleep(0s);
    std::vector<int> got;
    for (int i = 0; i < 5; ++i) {
        int v = co_await q.get();
        got.push_back(v);
    }
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
    for (auto& p : putters) co_await p;
}

// No barging: after a get from a full queue the freed slot belongs to the first putter, even
// before it runs.
CORIO_TEST(QueuePut, NewcomerCannotTakeTheSlotOfAWokenPutter) {
    Queue<int> q(1);
    q.put_nowait(1);
    Task<> p = create_task(put_one(q, 2));
    co_await sleep(0s);
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.qsize(), 0u);
    EXPECT_THROW(q.put_nowait(3), QueueFull);
    Task<> late = create_task(put_one(q, 4));
    co_await p;
    EXPECT_EQ(q.get_nowait(), 2);
    co_await late;
    EXPECT_EQ(q.get_nowait(), 4);
}

namespace {
Coro<> produce_n(Queue<int>& q, int n) {
    for (int i = 0; i < n; ++i) co_await q.put(i);
}
Coro<> consume_n(Queue<int>& q, int n, std::vector<int>& got) {
    for (int i = 0; i < n; ++i) {
        int v = co_await q.get();
        got.push_back(v);
    }
}
}  // namespace

// QueuePutTests.test_why_are_getters_waiting
CORIO_TEST(QueuePut, WhyAreGettersWaiting) {
    Queue<int> q(1);
    std::vector<int> got;
    Task<> p = create_task(produce_n(q, 5));
    Task<> c = create_task(consume_n(q, 5, got));
    co_await p;
    co_await c;
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
}

namespace {
Coro<> get_all_after_a_tick(Queue<int>& q, std::vector<int>& got) {
    co_await sleep(0s);
    std::size_t n = q.qsize();
    for (std::size_t i = 0; i < n; ++i) got.push_back(q.get_nowait());
}
}  // namespace

// QueuePutTests.test_why_are_putters_waiting
CORIO_TEST(QueuePut, WhyArePuttersWaiting) {
    Queue<int> q(2);
    std::vector<int> got;
    Task<> g = create_task(get_all_after_a_tick(q, got));
    std::vector<Task<>> putters;
    for (int i = 0; i < 4; ++i) putters.push_back(create_task(put_one(q, i)));
    co_await g;
    for (auto& p : putters) co_await p;
    EXPECT_EQ(got, (std::vector<int>{0, 1}));
    EXPECT_EQ(drain(q), (std::vector<int>{2, 3}));
}

// QueuePutTests.test_put_cancelled_race
CORIO_TEST(QueuePut, PutCancelledRace) {
    Queue<int> q(1);
    Task<> put_a = create_task(put_one(q, 'a'));
    Task<> put_b = create_task(put_one(q, 'b'));
    Task<> put_c = create_task(put_one(q, 'X'));
    co_await sleep(0s);
    EXPECT_TRUE(put_a.done());
    EXPECT_FALSE(put_b.done());
    put_c.cancel();
    co_await sleep(0s);
    EXPECT_TRUE(put_c.done());
    EXPECT_EQ(q.get_nowait(), 'a');
    co_await sleep(0s);
    EXPECT_EQ(q.get_nowait(), 'b');
    co_await put_a;
    co_await put_b;
    CO_EXPECT_FAILS(CancelledError, put_c);
    EXPECT_TRUE(q.empty());
}

// QueuePutTests.test_cancelled_puts_not_being_held_in_self_putters and
// test_cancelled_put_silence_value_error_exception
CORIO_TEST(QueuePut, CancelledPutIsNotHeld) {
    corio::testing::MockClock clock;
    Queue<int> q(1);
    q.put_nowait(1);
    Task<> p = create_task(put_one(q, 2));
    co_await sleep(100ms);
    p.cancel();
    CO_EXPECT_FAILS(CancelledError, p);
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_FALSE(q.full());  // no slot stays reserved for the cancelled putter
    q.put_nowait(3);
    EXPECT_EQ(drain(q), (std::vector<int>{3}));
}

// --- Q4: cancellation never loses an item or a slot -----------------------------------------

namespace {
template <class Q>
Coro<int> retry_after_cancel(Q& q) {
    Task<int> reader = create_task(get_one(q));
    co_await sleep(0s);
    q.put_nowait(1);
    q.put_nowait(2);
    q.put_nowait(3);
    reader.cancel();  // it was handed 1 but has not run yet
    try {
        co_await reader;
    } catch (const CancelledError&) {
    }
    // The retry gets what the cancelled reader was handed: it never left the queue's order.
    Task<int> again = create_task(get_one(q));
    co_return co_await again;
}
}  // namespace

// QueuePutTests.test_get_cancel_drop_one_pending_reader: "the retry gets 1, not 2"
CORIO_TEST(QueueCancel, GetCancelDropOnePendingReader) {
    Queue<int> q;
    CO_EXPECT_AWAIT_EQ(retry_after_cancel(q), 1);
    EXPECT_EQ(drain(q), (std::vector<int>{2, 3}));
}

// The same for a LIFO queue: the handed item goes back on top.
CORIO_TEST(QueueCancel, LifoGetterCancelledAfterHandOffKeepsOrder) {
    LifoQueue<int> q;
    CO_EXPECT_AWAIT_EQ(retry_after_cancel(q), 1);
    EXPECT_EQ(drain(q), (std::vector<int>{3, 2}));
}

CORIO_TEST(QueueCancel, PriorityGetterCancelledAfterHandOffKeepsOrder) {
    PriorityQueue<int> q;
    CO_EXPECT_AWAIT_EQ(retry_after_cancel(q), 1);
    EXPECT_EQ(drain(q), (std::vector<int>{2, 3}));
}

// QueuePutTests.test_get_cancel_drop_many_pending_readers: the cancelled reader's item goes
// to the next waiting reader.
CORIO_TEST(QueueCancel, GetCancelDropManyPendingReaders) {
    Queue<int> q;
    Task<int> r1 = create_task(get_one(q));
    Task<int> r2 = create_task(get_one(q));
    Task<int> r3 = create_task(get_one(q));
    co_await sleep(0s);
    q.put_nowait(1);
    q.put_nowait(2);
    r1.cancel();
    CO_EXPECT_FAILS(CancelledError, r1);
    int v3 = co_await r3;
    int v2 = co_await r2;
    EXPECT_EQ(v2, 2);
    EXPECT_EQ(v3, 1);
    EXPECT_TRUE(q.empty());
}

// A getter cancelled before anything arrived leaves the line; the next one is served.
CORIO_TEST(QueueCancel, CancelledWaitingGetterLeavesTheLine) {
    Queue<int> q;
    Task<int> g1 = create_task(get_one(q));
    Task<int> g2 = create_task(get_one(q));
    Task<int> g3 = create_task(get_one(q));
    co_await sleep(0s);
    g2.cancel();
    q.put_nowait(1);
    q.put_nowait(2);
    CO_EXPECT_AWAIT_EQ(g1, 1);
    CO_EXPECT_FAILS(CancelledError, g2);
    CO_EXPECT_AWAIT_EQ(g3, 2);
}

// QueuePutTests.test_put_cancel_drop
CORIO_TEST(QueueCancel, PutCancelDrop) {
    Queue<int> q(1);
    q.put_nowait(1);
    Task<> writer = create_task(put_one(q, 2));
    co_await sleep(0s);
    EXPECT_EQ(q.get_nowait(), 1);
    writer.cancel();  // after it was granted the slot
    CO_EXPECT_FAILS(CancelledError, writer);
    EXPECT_FALSE(q.full());
    Task<> again = create_task(put_one(q, 2));
    co_await again;
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_EQ(q.qsize(), 0u);
}

// A putter cancelled after being granted a slot passes the slot to the next putter.
CORIO_TEST(QueueCancel, GrantedSlotPassesToTheNextPutter) {
    Queue<int> q(1);
    q.put_nowait(0);
    Task<> p1 = create_task(put_one(q, 1));
    Task<> p2 = create_task(put_one(q, 2));
    Task<> p3 = create_task(put_one(q, 3));
    co_await sleep(0s);
    EXPECT_EQ(q.get_nowait(), 0);  // grants p1
    p1.cancel();
    co_await sleep(0s);  // p1 gives the slot to p2
    EXPECT_TRUE(p1.done());
    co_await sleep(0s);  // p2 puts
    EXPECT_TRUE(p2.done());
    EXPECT_FALSE(p3.done());
    EXPECT_EQ(q.get_nowait(), 2);
    co_await p3;
    EXPECT_EQ(q.get_nowait(), 3);
    CO_EXPECT_FAILS(CancelledError, p1);
    co_await p2;
}

namespace {
Coro<int> cancel_self_then_get(Queue<int>& q) {
    current_task().cancel();
    co_return co_await q.get();
}
Coro<> cancel_self_then_put(Queue<int>& q, int v) {
    current_task().cancel();
    co_await q.put(v);
}
}  // namespace

// A cancellation pending when the task reaches get()/put() is delivered there, and the task
// never joins the line (T6).
CORIO_TEST(QueueCancel, PendingCancellationIsDeliveredWithoutWaiting) {
    Queue<int> q(1);
    Task<int> g = create_task(cancel_self_then_get(q));
    CO_EXPECT_FAILS(CancelledError, g);
    q.put_nowait(1);
    EXPECT_EQ(q.qsize(), 1u);  // not handed to the cancelled getter
    Task<> p = create_task(cancel_self_then_put(q, 2));
    CO_EXPECT_FAILS(CancelledError, p);
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_FALSE(q.full());
    EXPECT_TRUE(q.empty());
}

// A cancelled join() leaves; the unfinished count is untouched and join works afterwards.
CORIO_TEST(QueueCancel, CancelledJoin) {
    Queue<int> q;
    q.put_nowait(1);
    Task<> j1 = create_task(join_one(q));
    Task<> j2 = create_task(join_one(q));
    co_await sleep(0s);
    j1.cancel();
    CO_EXPECT_FAILS(CancelledError, j1);
    EXPECT_FALSE(j2.done());
    EXPECT_EQ(q.get_nowait(), 1);
    q.task_done();
    co_await j2;
    co_await q.join();
}

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

// --- Move-only items and copies ---------------------------------------------------------------

CORIO_TEST(QueueItems, MoveOnlyItems) {
    using P = std::unique_ptr<int>;
    Queue<P> q(1);
    auto first = std::make_unique<int>(1);
    co_await q.put(std::move(first));
    auto rejected = std::make_unique<int>(2);
    EXPECT_THROW(q.put_nowait(std::move(rejected)), QueueFull);
    CO_ASSERT_TRUE(rejected != nullptr);  // a rejected put_nowait does not consume the item
    Task<> blocked = create_task(put_one(q, std::move(rejected)));
    co_await sleep(0s);
    P a = co_await q.get();  // grants `blocked` its slot
    CO_ASSERT_TRUE(a != nullptr);
    EXPECT_EQ(*a, 1);
    Task<P> getter = create_task(get_one(q));
    co_await blocked;
    P b = co_await std::move(getter);
    CO_ASSERT_TRUE(b != nullptr);
    EXPECT_EQ(*b, 2);

    struct Deref {
        bool operator()(const P& x, const P& y) const { return *x < *y; }
    };
    PriorityQueue<P, Deref> pq;
    for (int i : {3, 1, 2}) pq.put_nowait(std::make_unique<int>(i));
    LifoQueue<P> lq;
    for (int i : {3, 1, 2}) lq.put_nowait(std::make_unique<int>(i));
    std::vector<int> got;
    for (int i = 0; i < 3; ++i) got.push_back(*pq.get_nowait());
    for (int i = 0; i < 3; ++i) got.push_back(*lq.get_nowait());
    EXPECT_EQ(got, (std::vector<int>{1, 2, 3, 2, 1, 3}));
}

namespace {
struct Counted {
    static inline int copies = 0;
    int v = 0;
    explicit Counted(int value) : v(value) {}
    Counted(const Counted& o) : v(o.v) { ++copies; }
    Counted(Counted&&) noexcept = default;
    Counted& operator=(const Counted& o) {
        v = o.v;
        ++copies;
        return *this;
    }
    Counted& operator=(Counted&&) noexcept = default;
};

Coro<> put_counted(Queue<Counted>& q, int v) {
    Counted c(v);
    co_await q.put(std::move(c));
}
}  // namespace

// Items are moved, never copied, through every path: queued, handed to a getter, and held by
// a blocked putter. A put of an lvalue copies exactly once.
CORIO_TEST(QueueItems, ItemsAreMovedNotCopied) {
    Counted::copies = 0;
    Queue<Counted> q(1);
    Task<Counted> g = create_task(get_one(q));
    co_await sleep(0s);
    Task<> direct = create_task(put_counted(q, 1));  // handed to g
    Task<> queued = create_task(put_counted(q, 2));
    Task<> blocked = create_task(put_counted(q, 3));
    co_await sleep(0s);
    Counted a = co_await std::move(g);
    Counted b = co_await q.get();
    Counted c = co_await q.get();
    EXPECT_EQ(a.v, 1);
    EXPECT_EQ(b.v, 2);
    EXPECT_EQ(c.v, 3);
    co_await direct;
    co_await queued;
    co_await blocked;
    EXPECT_EQ(Counted::copies, 0);
    Counted lvalue(4);
    co_await q.put(lvalue);
    (void)q.get_nowait();
    q.put_nowait(lvalue);
    EXPECT_EQ(q.get_nowait().v, 4);
    EXPECT_EQ(Counted::copies, 2);
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

// --- Stress -----------------------------------------------------------------------------------

namespace {
constexpr int kProducerStride = 1'000'000;

Coro<> pp_producer(Queue<int>& q, int id, int count) {
    for (int k = 0; k < count; ++k) {
        co_await q.put(id * kProducerStride + k);
        if (k % 5 == id) co_await sleep(0s);
    }
}

Coro<> pp_consumer(Queue<int>& q, int id, std::vector<int>& got) {
    for (int n = 0;; ++n) {
        int v = co_await q.get();
        q.task_done();
        if (v < 0) co_return;
        got.push_back(v);
        if (n % 7 == id) co_await sleep(0s);
    }
}
}  // namespace

// 10,000 items from 3 producers to 3 consumers through a small queue: every item arrives
// exactly once, and each consumer sees each producer's items in order.
CORIO_TEST(QueueStress, ProducerConsumerPingPong) {
    Queue<int> q(4);
    const int counts[3] = {3334, 3333, 3333};
    std::vector<int> got[3];
    std::vector<Task<>> producers, consumers;
    for (int c = 0; c < 3; ++c) consumers.push_back(create_task(pp_consumer(q, c, got[c])));
    for (int p = 0; p < 3; ++p) producers.push_back(create_task(pp_producer(q, p, counts[p])));
    for (auto& p : producers) co_await p;
    co_await q.join();
    for (int c = 0; c < 3; ++c) q.put_nowait(-1);
    for (auto& c : consumers) co_await c;

    std::vector<int> all;
    for (int c = 0; c < 3; ++c) {
        EXPECT_FALSE(got[c].empty()) << "consumer " << c << " starved";
        int last[3] = {-1, -1, -1};
        for (int v : got[c]) {
            int p = v / kProducerStride, k = v % kProducerStride;
            EXPECT_GT(k, last[p]) << "consumer " << c << " got producer " << p << "'s items out of order";
            last[p] = k;
        }
        all.insert(all.end(), got[c].begin(), got[c].end());
    }
    std::vector<int> expected;
    for (int p = 0; p < 3; ++p)
        for (int k = 0; k < counts[p]; ++k) expected.push_back(p * kProducerStride + k);
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all.size(), 10'000u);
    EXPECT_EQ(all, expected);
    EXPECT_TRUE(q.empty());
    co_await q.join();
}

namespace {
struct Storm {
    std::mt19937 rng;
    std::vector<std::vector<int>> got;  // per consumer
    int received = 0;
    int cancelled_puts = 0;
    int cancelled_gets = 0;
};

// Cancels `t` before its first step, or after 1-3 ticks (while it waits, or after it was woken
// with an item or a slot but before it ran), or not at all.
template <class T>
Coro<> maybe_cancel(Task<T>& t, std::mt19937& rng) {
    unsigned r = rng() % 6;
    if (r >= 4) co_return;
    for (unsigned i = 0; i < r; ++i) co_await sleep(0s);
    t.cancel();
}

Coro<> storm_producer(Queue<int>& q, int base, int n, Storm& s) {
    for (int i = 0; i < n;) {
        if (s.rng() % 3 == 0) {  // a plain put: fills the queue without a tick in between
            co_await q.put(base + i);
            ++i;
            continue;
        }
        Task<> t = create_task(put_one(q, base + i));
        co_await maybe_cancel(t, s.rng);
        try {
            co_await t;
            ++i;
        } catch (const CancelledError&) {
            if (current_task().cancelling() > 0) throw;  // our own cancellation, not t's
            ++s.cancelled_puts;
        }
    }
}

// Runs until shutdown() tells it everything has been received.
Coro<> storm_consumer(Queue<int>& q, int id, Storm& s) {
    for (;;) {
        if (s.rng() % 4 == 0) {
            try {
                int v = co_await q.get();
                s.got[id].push_back(v);
                ++s.received;
                q.task_done();
            } catch (const QueueShutDown&) {
                co_return;
            }
            continue;
        }
        Task<int> t = create_task(get_one(q));
        co_await maybe_cancel(t, s.rng);
        try {
            int v = co_await t;
            s.got[id].push_back(v);
            ++s.received;
            q.task_done();
        } catch (const CancelledError&) {
            if (current_task().cancelling() > 0) throw;  // our own cancellation, not t's
            ++s.cancelled_gets;
        } catch (const QueueShutDown&) {
            co_return;
        }
    }
}

Coro<> run_storm(std::ptrdiff_t maxsize, int producers, int consumers, int per_producer, unsigned seed) {
    Queue<int> q(maxsize);
    Storm s{std::mt19937(seed), std::vector<std::vector<int>>(consumers)};
    std::vector<Task<>> ps, cs;
    for (int c = 0; c < consumers; ++c) cs.push_back(create_task(storm_consumer(q, c, s)));
    for (int p = 0; p < producers; ++p) ps.push_back(create_task(storm_producer(q, p * 100'000, per_producer, s)));
    for (auto& p : ps) co_await p;
    while (s.received < producers * per_producer) co_await sleep(0s);
    co_await q.join();
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(q.full());
    q.shutdown();
    for (auto& c : cs) co_await c;

    SCOPED_TRACE(::testing::Message() << "maxsize " << maxsize << ", " << producers << " producers, " << consumers
                                      << " consumers");
    EXPECT_GT(s.cancelled_puts, 0);
    EXPECT_GT(s.cancelled_gets, 0);
    std::vector<int> all, expected;
    for (auto& g : s.got) all.insert(all.end(), g.begin(), g.end());
    for (int p = 0; p < producers; ++p)
        for (int i = 0; i < per_producer; ++i) expected.push_back(p * 100'000 + i);
    if (producers == 1 && consumers == 1) {
        EXPECT_EQ(all, expected);  // one line each way: FIFO order survives every cancellation
    } else {
        std::sort(all.begin(), all.end());
        EXPECT_EQ(all, expected);  // each item exactly once
    }
}
}  // namespace

// Q4 under fire: puts and gets cancelled at every possible moment lose no item and no slot,
// and duplicate nothing.
CORIO_TEST(QueueStress, CancellationStormOneToOneKeepsOrder) {
    const std::ptrdiff_t sizes[] = {1, 3, 0};
    for (std::ptrdiff_t maxsize : sizes) co_await run_storm(maxsize, 1, 1, 2000, 7u + unsigned(maxsize));
}

CORIO_TEST(QueueStress, CancellationStormManyToMany) {
    const std::ptrdiff_t sizes[] = {1, 2, 5, 0};
    for (std::ptrdiff_t maxsize : sizes) co_await run_storm(maxsize, 3, 3, 1000, 11u + unsigned(maxsize));
}

// asyncio's `await asyncio.wait_for(q.get(), t)` and friends: the awaiters move into wait_for's
// frame; a get that times out takes no item, a put that times out adds none.
CORIO_TEST(QueueWaitFor, GetPutAndJoinUnderWaitFor) {
    corio::testing::MockClock clock;
    const auto t0 = clock.now();
    Queue<std::unique_ptr<int>> q(1);
    bool get_timed_out = false;
    try {
        Coro<std::unique_ptr<int>> getting = wait_for(q.get(), 1s);
        auto v = co_await std::move(getting);
    } catch (const TimeoutError&) {
        get_timed_out = true;
    }
    EXPECT_TRUE(get_timed_out);
    EXPECT_EQ(clock.seconds_since(t0), 1.0);

    Coro<void> first_put = wait_for(q.put(std::make_unique<int>(1)), 1s);
    co_await std::move(first_put);
    bool put_timed_out = false;
    try {
        Coro<void> second_put = wait_for(q.put(std::make_unique<int>(2)), 1s);
        co_await std::move(second_put);
    } catch (const TimeoutError&) {
        put_timed_out = true;
    }
    EXPECT_TRUE(put_timed_out);
    EXPECT_EQ(q.qsize(), 1u);

    Coro<std::unique_ptr<int>> getting = wait_for(q.get(), 1s);
    std::unique_ptr<int> got = co_await std::move(getting);
    CO_ASSERT_TRUE(got != nullptr);
    EXPECT_EQ(*got, 1);
    EXPECT_TRUE(q.empty());

    bool join_timed_out = false;
    try {
        Coro<void> joining = wait_for(q.join(), 1s);
        co_await std::move(joining);
    } catch (const TimeoutError&) {
        join_timed_out = true;
    }
    EXPECT_TRUE(join_timed_out);  // one get() not yet matched by task_done()
    q.task_done();
    Coro<void> joined = wait_for(q.join(), 1s);
    co_await std::move(joined);
}
