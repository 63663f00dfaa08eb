// The recycling allocator behind coroutine frames, task states and callbacks: the alignment it
// promises. A frame must be aligned to __STDCPP_DEFAULT_NEW_ALIGNMENT__ whatever its size
// (clang's Release code stores 16-byte vectors into frames with aligned moves: a misaligned
// frame crashed QueueStress.ProducerConsumerPingPong), and an object whose size is a multiple of
// 16 may need 16 too.
#include <corio/testing.hpp>
#include <corio/detail/frame_alloc.hpp>
#include <corio/detail/promise_base.hpp>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

using namespace corio;

namespace {

bool aligned(void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

// Sizes of every class up to the recycled limit, in an order that mixes odd and even classes
// (the odd ones, like a 104-byte task state, used to leave the bump pointer 8 off).
std::vector<std::size_t> mixed_sizes() {
    std::vector<std::size_t> sizes;
    for (std::size_t s = 8; s <= 1016; s += 8) sizes.push_back(s);
    for (std::size_t s = 1; s < 1016; s += 13) sizes.push_back(s);
    return sizes;
}

}  // namespace

TEST(FrameAlloc, BlocksWhoseSizeIsAMultipleOf16AreAlignedTo16) {
    std::vector<std::pair<void*, std::size_t>> blocks;
    for (int round = 0; round < 200; ++round) {
        for (std::size_t size : mixed_sizes()) {
            void* p = detail::frame_alloc(size);
            blocks.emplace_back(p, size);
            EXPECT_TRUE(aligned(p, 8)) << "size " << size;
            if (size % 16 == 0) {
                EXPECT_TRUE(aligned(p, 16)) << "size " << size << " at " << p;
            }
        }
    }
    // Freed and taken again: recycled blocks keep the promise.
    for (auto [p, size] : blocks) detail::frame_free(p, size);
    for (auto [p, size] : blocks) {
        void* q = detail::frame_alloc(size);
        if (size % 16 == 0) {
            EXPECT_TRUE(aligned(q, 16)) << "recycled size " << size;
        }
        detail::frame_free(q, size);
    }
}

TEST(FrameAlloc, CoroutineFramesOfAnySizeAreAlignedToTheDefaultNewAlignment) {
    std::vector<std::pair<void*, std::size_t>> frames;
    for (int round = 0; round < 200; ++round) {
        for (std::size_t size : mixed_sizes()) {
            void* p = detail::PromiseBase::operator new(size);
            frames.emplace_back(p, size);
            EXPECT_TRUE(aligned(p, __STDCPP_DEFAULT_NEW_ALIGNMENT__)) << "frame size " << size;
        }
    }
    for (auto [p, size] : frames) detail::PromiseBase::operator delete(p, size);
}

namespace {
struct alignas(16) Wide {
    char bytes[48];
};
Coro<Wide> make_wide(int fill) {
    Wide w{};
    w.bytes[0] = char(fill);
    co_return w;
}
}  // namespace

// The scenario that crashed: many live frames of mixed sizes, with 16-byte values in them.
CORIO_TEST(FrameAllocTasks, TasksWithOverAlignedValuesRunAmongOddSizedBlocks) {
    std::vector<Task<Wide>> tasks;
    std::vector<std::pair<void*, std::size_t>> odd;
    for (int i = 0; i < 2000; ++i) {
        odd.emplace_back(detail::frame_alloc(104), 104);
        tasks.push_back(create_task(make_wide(i % 100)));
    }
    for (int i = 0; i < 2000; ++i) {
        Wide w = co_await tasks[i];
        EXPECT_EQ(w.bytes[0], char(i % 100));
        EXPECT_TRUE(aligned(&w, 16));
    }
    for (auto [p, size] : odd) detail::frame_free(p, size);
}

// One thread makes blocks, another frees them (callbacks posted with call_soon_threadsafe, a
// Coro made on one thread and run on a loop): the freed blocks joined the freeing thread's
// list and never came back, so the making thread carved new memory for ever (782 MB after 20
// million posted callbacks, with a thousand alive at a time). A thread's list is now capped, its
// excess shared, and adopted by the thread that runs short.
TEST(FrameAlloc, BlocksFreedOnAnotherThreadComeBackToTheThreadThatMakesThem) {
    constexpr std::size_t kSize = 200;  // a class of its own here
    {
        void* probe = detail::frame_alloc(kSize);
        detail::frame_free(probe, kSize);
        const auto before = detail::frame_alloc_stats().reused;
        detail::frame_free(detail::frame_alloc(kSize), kSize);
        if (detail::frame_alloc_stats().reused == before) GTEST_SKIP() << "sanitizer build: plain new/delete";
    }
    constexpr int kBatches = 500, kBatch = 1000;
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::vector<void*>> handed;
    bool done = false;
    std::thread freer([&] {
        for (;;) {
            std::vector<void*> batch;
            {
                std::unique_lock lock(m);
                cv.wait(lock, [&] { return done || !handed.empty(); });
                if (handed.empty()) return;
                batch = std::move(handed.back());
                handed.pop_back();
            }
            cv.notify_all();
            for (void* p : batch) detail::frame_free(p, kSize);
        }
    });
    const auto fresh_before = detail::frame_alloc_stats().fresh;
    for (int i = 0; i < kBatches; ++i) {
        std::vector<void*> batch;
        for (int j = 0; j < kBatch; ++j) batch.push_back(detail::frame_alloc(kSize));
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return handed.size() < 2; });  // a bounded number in flight
        handed.push_back(std::move(batch));
        cv.notify_all();
    }
    {
        std::lock_guard lock(m);
        done = true;
    }
    cv.notify_all();
    freer.join();
    const auto fresh = detail::frame_alloc_stats().fresh - fresh_before;
    // In flight at most ~4,000 blocks; the freeing thread keeps ~1,300; the maker may finish
    // carving its current chunk (up to 2 MiB, ~10,000 blocks); each adopted list counts once.
    EXPECT_LT(fresh, 50'000u) << "of " << kBatches * kBatch << " blocks, " << fresh << " were new memory";
}
