// Queue, PriorityQueue, LifoQueue: CPython's test_asyncio/test_queues.py (rules Q1-Q7), plus
// the hand-off cases asyncio cannot express (a waiter cancelled between being woken and
// running). This file: size and order (Q1, Q2), blocking and nonblocking gets and puts (Q1, Q3),
// and move-only items. Cancellation (Q4) and the stress runs are in test_queue_cancel.cpp,
// task_done/join, shutdown and lifetime (Q5 - Q7) in test_queue_shutdown.cpp.
#include <corio/queue.hpp>
#include <corio/testing.hpp>

#include "queue_support.hpp"

#include <functional>
#include <memory>
#include <utility>
#include <vector>

using namespace corio;
using namespace corio_test;

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
