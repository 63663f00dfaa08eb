// Per-thread free lists by size class. Frames and task states of a steady workload are
// recycled without touching malloc; sanitizer builds use plain new/delete so that ASan still
// sees every use-after-free.
#include "corio/detail/frame_alloc.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>
#include <sys/mman.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CORIO_PLAIN_ALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CORIO_PLAIN_ALLOC 1
#endif
#endif

namespace corio::detail {

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels say EINVAL
#endif

void populate_pages(void* p, std::size_t bytes) noexcept {
    constexpr std::uintptr_t kPage = 4096;
    auto begin = (reinterpret_cast<std::uintptr_t>(p) + kPage - 1) & ~(kPage - 1);
    auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(kPage - 1);
    if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
}

#ifdef CORIO_PLAIN_ALLOC

thread_local FrameAllocStats stats;
void* frame_alloc(std::size_t size) {
    ++stats.fresh;
    return ::operator new(size);
}
FrameAllocStats frame_alloc_stats() noexcept { return stats; }
void frame_free(void* p, std::size_t) noexcept { ::operator delete(p); }

#else

namespace {

constexpr std::size_t kGranule = 8;  // a 104-byte task state takes 104, not 112
constexpr std::size_t kClasses = 128;  // blocks up to 1 KiB are recycled
// A thread carves blocks of every class, by bumping a pointer, from chunks that start small
// (a thread that makes a few frames keeps a few KiB) and double up to 2 MiB. Chunks from
// 256 KiB up are mapped, and populated 256 KiB at a time just ahead of the bump pointer
// (MADV_POPULATE_WRITE): a burst of a million tasks then costs a syscall per 256 KiB instead
// of a page fault per 4 KiB (half of W1's time went to those faults), and at most 256 KiB is
// resident but unused (MAP_POPULATE of whole chunks left up to 2 MiB). Not MADV_HUGEPAGE: with
// the usual defrag=madvise setting its faults compact memory synchronously, which made runs on
// a busy machine up to 4x slower.
constexpr std::size_t kFirstChunk = 64 * 1024;
constexpr std::size_t kMappedChunk = 256 * 1024;
constexpr std::size_t kLastChunk = 2 * 1024 * 1024;
constexpr std::size_t kPopulateStep = 256 * 1024;

struct FreeBlock {
    FreeBlock* next;
};

// A block may be freed on another thread than the one that carved it (a Coro made on one thread
// and run on a loop, a call_soon_threadsafe callback): it joins that thread's list. A thread
// keeps at most kKeptBytes of free blocks a class; past that, its list goes whole (in O(1)) to
// the shared orphan lists, as does everything of a thread that ends, and a thread whose chunk
// runs out adopts orphans before it carves a new one. So a one-way flow (a thread posting
// callbacks to a loop, which frees them) recycles its blocks instead of growing without end,
// and what is kept stays bounded by the peak in use. Chunks are never given back while the
// process runs.
constexpr std::size_t kKeptBytes = 256 * 1024;
constexpr auto kKeptBlocks = [] {
    std::array<std::size_t, kClasses> blocks{};
    for (std::size_t cls = 1; cls < kClasses; ++cls) blocks[cls] = kKeptBytes / (cls * kGranule);
    return blocks;
}();

struct Global {
    std::mutex mutex;
    FreeBlock* orphans[kClasses] = {};
    FreeBlock* orphan_tails[kClasses] = {};
    std::size_t orphan_counts[kClasses] = {};
    std::vector<std::pair<void*, std::size_t>> chunks;
    ~Global() {
        for (auto [c, size] : chunks) {
            if (size >= kMappedChunk) ::munmap(c, size);
            else std::free(c);
        }
    }
};
Global& global() {
    static Global g;
    return g;
}

struct Cache {
    // A class's head, tail and length side by side: the fast paths touch one cache line.
    struct FreeList {
        FreeBlock* head;
        FreeBlock* tail;  // valid while head is not null
        std::size_t count;
    };
    FreeList lists[kClasses] = {};
    char* bump = nullptr;
    char* bump_end = nullptr;
    char* populated_end = nullptr;  // of a mapped chunk: pages below are resident
    std::size_t next_chunk = kFirstChunk;

    ~Cache() {
        Global& g = global();
        std::lock_guard lock(g.mutex);
        for (std::size_t cls = 0; cls < kClasses; ++cls) give_to_orphans(g, cls);
    }

    // Under g.mutex.
    void give_to_orphans(Global& g, std::size_t cls) noexcept {
        FreeList& l = lists[cls];
        if (!l.head) return;
        if (!g.orphans[cls]) g.orphan_tails[cls] = l.tail;
        l.tail->next = g.orphans[cls];
        g.orphans[cls] = l.head;
        g.orphan_counts[cls] += l.count;
        l.head = nullptr;
        l.count = 0;
    }

    void keep(std::size_t cls, FreeBlock* b) noexcept {
        FreeList& l = lists[cls];
        if (!l.head) l.tail = b;
        b->next = l.head;
        l.head = b;
        ++l.count;
    }

    // A freed block (never under g.mutex: the list may go to the orphans).
    void push(std::size_t cls, FreeBlock* b) noexcept {
        keep(cls, b);
        if (lists[cls].count > kKeptBlocks[cls]) [[unlikely]]
            spill(cls);
    }

    [[gnu::noinline]] void spill(std::size_t cls) noexcept {
        Global& g = global();
        std::lock_guard lock(g.mutex);
        give_to_orphans(g, cls);
    }

    void* refill(std::size_t cls) {
        Global& g = global();
        std::size_t block = cls * kGranule;
        if (std::size_t(bump_end - bump) < block) {
            std::lock_guard lock(g.mutex);
            if (FreeBlock* adopted = g.orphans[cls]) {
                g.orphans[cls] = nullptr;
                lists[cls] = {adopted->next, g.orphan_tails[cls], g.orphan_counts[cls] - 1};
                g.orphan_counts[cls] = 0;
                return adopted;
            }
            new_chunk(g);
        }
        // The bump pointer stays 16-aligned, so even classes get 16-aligned blocks. An odd
        // class carves two blocks at once and keeps the second, which is aligned to 8 only.
        void* p = bump;
        bump += block;
        if (cls % 2 && std::size_t(bump_end - bump) >= block) {
            keep(cls, reinterpret_cast<FreeBlock*>(bump));
            bump += block;
        }
        if (std::uintptr_t(bump) % 16) bump += kGranule;
        if (bump > populated_end) populate();
        return p;
    }

    void populate() noexcept {
        std::size_t step = std::min(kPopulateStep, std::size_t(bump_end - populated_end));
        populate_pages(populated_end, step);
        populated_end += step;
    }

    void new_chunk(Global& g) {
        std::size_t size = next_chunk;
        void* chunk;
        if (size >= kMappedChunk) {
            chunk = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (chunk == MAP_FAILED) throw std::bad_alloc();
        } else {
            chunk = std::malloc(size);
            if (!chunk) throw std::bad_alloc();
        }
        g.chunks.emplace_back(chunk, size);
        // What was left of the old chunk is too small for this class: give it to smaller ones.
        // The rest is a multiple of 16 at a 16-aligned address, and stays so with even classes.
        while (std::size_t left = std::size_t(bump_end - bump) / kGranule) {
            std::size_t cls = left < kClasses ? left : kClasses - 2;
            keep(cls, reinterpret_cast<FreeBlock*>(bump));
            bump += cls * kGranule;
        }
        bump = static_cast<char*>(chunk);
        bump_end = bump + size;
        // malloc'd chunks are small: their pages fault in as they are used.
        populated_end = size >= kMappedChunk ? bump : bump_end;
        next_chunk = size < kLastChunk ? size * 2 : kLastChunk;
    }
};

thread_local Cache cache;
thread_local FrameAllocStats stats;

// Out of line, so that the path that pops a free list saves no registers.
[[gnu::noinline]] void* alloc_fresh(std::size_t cls, std::size_t size) {
    ++stats.fresh;
    if (cls < kClasses) return cache.refill(cls);
    void* p = std::malloc(size);
    if (!p) throw std::bad_alloc();
    return p;
}

}  // namespace

void* frame_alloc(std::size_t size) {
    std::size_t cls = (size + kGranule - 1) / kGranule;
    if (cls == 0) cls = 1;
    if (cls < kClasses) {
        auto& l = cache.lists[cls];
        if (FreeBlock* b = l.head) {
            l.head = b->next;
            --l.count;
            ++stats.reused;
            return b;
        }
    }
    return alloc_fresh(cls, size);
}

FrameAllocStats frame_alloc_stats() noexcept { return stats; }

void frame_free(void* p, std::size_t size) noexcept {
    if (!p) return;
    std::size_t cls = (size + kGranule - 1) / kGranule;
    if (cls == 0) cls = 1;
    if (cls < kClasses) {
        cache.push(cls, static_cast<FreeBlock*>(p));
        return;
    }
    std::free(p);
}

#endif

}  // namespace corio::detail
