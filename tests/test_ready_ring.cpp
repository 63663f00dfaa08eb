// The loop's ready queue: first in, first out across every growth, wherever the head is when
// the ring fills (a growth with the entries wrapped round the end moves only those), and the
// loop's callbacks keep their order through a growth in the middle of a tick.
#include <corio/detail/ready_ring.hpp>
#include <corio/loop.hpp>
#include <corio/testing.hpp>

#include <cstdint>
#include <deque>
#include <vector>

using namespace corio;

TEST(ReadyRing, StaysFirstInFirstOutThroughGrowthsAtEveryHeadPosition) {
    // Pops between pushes move the head round the ring, so that the ring fills with its
    // entries wrapped at many different places before each doubling.
    detail::ReadyRing ring;
    std::deque<std::uintptr_t> expected;
    std::uintptr_t next = 0;
    std::uint64_t rng = 88172645463325252ull;
    for (int step = 0; step < 200000; ++step) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Pushes win two times in three: the ring grows to tens of thousands of entries.
        if (rng % 3 != 0 || expected.empty()) {
            ring.push(next * 4);
            expected.push_back(next * 4);
            ++next;
        } else {
            ASSERT_EQ(ring.pop(), expected.front()) << "step " << step;
            expected.pop_front();
        }
        ASSERT_EQ(ring.size(), expected.size());
    }
    for (std::size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(ring[i], expected[i]) << "entry " << i;
    while (!expected.empty()) {
        ASSERT_EQ(ring.pop(), expected.front());
        expected.pop_front();
    }
}

TEST(ReadyRing, AFullRingWrappedRoundItsEndKeepsItsOrderWhenItGrows) {
    detail::ReadyRing ring;
    const std::size_t capacity = ring.capacity();
    std::uintptr_t value = 0;
    // The head moves to the middle; filling the ring then wraps its tail round to the front.
    for (std::size_t i = 0; i < capacity / 2; ++i) ring.push(value++ * 4);
    for (std::size_t i = 0; i < capacity / 2; ++i) ASSERT_EQ(ring.pop(), i * 4);
    while (ring.size() < capacity) ring.push(value++ * 4);
    ring.push(value++ * 4);  // grows: the entries at the old ring's front must follow its back
    EXPECT_EQ(ring.capacity(), 2 * capacity);
    for (std::uintptr_t expected = capacity / 2; expected < value; ++expected) ASSERT_EQ(ring.pop(), expected * 4);
    EXPECT_EQ(ring.size(), 0u);
}

// A callback that schedules hundreds more grows the queue while the tick is popping it.
CORIO_TEST(LoopReadyQueue, CallbacksRunInTheOrderScheduledAcrossAGrowthInTheMiddleOfATick) {
    EventLoop& loop = get_running_loop();
    std::vector<int> order;
    auto record = [&order](int id) { return [&order, id] { order.push_back(id); }; };
    loop.call_soon([&] {
        order.push_back(0);
        for (int i = 1000; i < 3000; ++i) loop.call_soon(record(i));
    });
    for (int i = 1; i < 400; ++i) loop.call_soon(record(i));
    co_await sleep(0s);
    co_await sleep(0s);
    std::vector<int> expected;
    for (int i = 0; i < 400; ++i) expected.push_back(i);
    for (int i = 1000; i < 3000; ++i) expected.push_back(i);
    EXPECT_EQ(order, expected);
}
