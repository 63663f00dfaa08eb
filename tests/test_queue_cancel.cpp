// Queue cancellation: a cancelled get, put or join never loses or duplicates an item or a slot
// (rule Q4 of CPython's test_asyncio/test_queues.py), including the hand-off cases asyncio
// cannot express (a waiter cancelled between being woken and running), get/put/join under
// wait_for, and stress runs (a producer/consumer ping-pong and cancellation storms) that check
// no item is lost or duplicated.
#include <corio/queue.hpp>
#include <corio/testing.hpp>

#include "queue_support.hpp"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

using namespace corio;
using namespace corio_test;

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

// --- An item whose move throws ----------------------------------------------------------------

namespace {
// Its next move throws once, when armed.
struct MovesBadly {
    int value;
    static inline bool armed = false;
    explicit MovesBadly(int v) : value(v) {}
    MovesBadly(MovesBadly&& other) : value(other.value) {
        if (armed) {
            armed = false;
            throw std::runtime_error("move failed");
        }
    }
    MovesBadly& operator=(MovesBadly&&) = default;
};
}  // namespace

// A put whose item could not be moved to the waiting getter took the getter off the queue's
// list first: it was never woken, even by the next put (found by the queue hunt).
CORIO_TEST(QueueThrowingMoves, AGetterStaysFirstInLineWhenTheItemHandedToItCannotBeMoved) {
    Queue<MovesBadly> q;
    Task<MovesBadly> getter = create_task(get_one(q));
    co_await sleep(0s);
    MovesBadly::armed = true;
    EXPECT_THROW(q.put_nowait(MovesBadly(1)), std::runtime_error);
    q.put_nowait(MovesBadly(2));
    co_await sleep(0s);
    CO_ASSERT_TRUE(getter.done());
    MovesBadly got = co_await getter;
    EXPECT_EQ(got.value, 2);
    EXPECT_EQ(q.qsize(), 0u);
}

// A granted putter whose item could not be stored freed its slot without granting it: the next
// putter waited on a queue with room (found by the queue hunt).
CORIO_TEST(QueueThrowingMoves, ASlotAPutterCouldNotFillPassesToTheNextPutter) {
    Queue<MovesBadly> q(1);
    q.put_nowait(MovesBadly(0));
    Task<> first = create_task(put_one(q, MovesBadly(1)));
    Task<> second = create_task(put_one(q, MovesBadly(2)));
    co_await sleep(0s);
    CO_ASSERT_FALSE(first.done());
    EXPECT_EQ(q.get_nowait().value, 0);  // grants the slot to the first putter
    MovesBadly::armed = true;            // whose item then fails to go in
    co_await sleep(0s);
    co_await sleep(0s);
    CO_EXPECT_FAILS(std::runtime_error, first);
    CO_ASSERT_TRUE(second.done());
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(q.get_nowait().value, 2);
}
