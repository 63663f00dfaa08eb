// Per-thread free lists by size class. Frames and task states of a steady workload are
// recycled without touching malloc; sanitizer builds use plain new/delete so that ASan still
// sees every use-after-free.
#include "corio/detail/frame_alloc.hpp"

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CORIO_PLAIN_ALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CORIO_PLAIN_ALLOC 1
#endif
#endif

namespace corio::detail {

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

constexpr std::size_t kGranule = 16;
constexpr std::size_t kClasses = 64;        // blocks up to 1 KiB are recycled
constexpr std::size_t kSlabBytes = 64 * 1024;  // carved into blocks of one class at a time

struct FreeBlock {
    FreeBlock* next;
};

// Blocks come from slabs, never one malloc each: a burst of a million tasks costs a few
// thousand mallocs, and no per-block malloc header. A block may be freed on another thread than
// the one that carved it (a Coro made on one thread and run on a loop, a call_soon_threadsafe
// callback): it joins that thread's list. So slabs are never given back while the process runs;
// a thread that ends hands its free blocks to the others through the orphan lists, which bounds
// what is kept to the peak in use.
struct Global {
    std::mutex mutex;
    FreeBlock* orphans[kClasses] = {};
    std::vector<void*> slabs;
    ~Global() {
        for (void* s : slabs) std::free(s);
    }
};
Global& global() {
    static Global g;
    return g;
}

struct Cache {
    FreeBlock* heads[kClasses] = {};
    ~Cache() {
        Global& g = global();
        std::lock_guard lock(g.mutex);
        for (std::size_t cls = 0; cls < kClasses; ++cls) {
            while (FreeBlock* b = heads[cls]) {
                heads[cls] = b->next;
                b->next = g.orphans[cls];
                g.orphans[cls] = b;
            }
        }
    }
    FreeBlock* refill(std::size_t cls) {
        Global& g = global();
        std::lock_guard lock(g.mutex);
        if (FreeBlock* adopted = g.orphans[cls]) {
            g.orphans[cls] = nullptr;
            heads[cls] = adopted->next;
            return adopted;
        }
        std::size_t block = cls * kGranule;
        std::size_t count = kSlabBytes / block;
        char* slab = static_cast<char*>(std::malloc(count * block));
        if (!slab) throw std::bad_alloc();
        g.slabs.push_back(slab);
        for (std::size_t i = 1; i < count; ++i) {
            auto* b = reinterpret_cast<FreeBlock*>(slab + i * block);
            b->next = heads[cls];
            heads[cls] = b;
        }
        return reinterpret_cast<FreeBlock*>(slab);
    }
};

thread_local Cache cache;
thread_local FrameAllocStats stats;

}  // namespace

void* frame_alloc(std::size_t size) {
    std::size_t cls = (size + kGranule - 1) / kGranule;
    if (cls < kClasses) {
        if (FreeBlock* b = cache.heads[cls]) {
            cache.heads[cls] = b->next;
            ++stats.reused;
            return b;
        }
        ++stats.fresh;
        return cache.refill(cls == 0 ? 1 : cls);
    }
    ++stats.fresh;
    void* p = std::malloc(size);
    if (!p) throw std::bad_alloc();
    return p;
}

FrameAllocStats frame_alloc_stats() noexcept { return stats; }

void frame_free(void* p, std::size_t size) noexcept {
    if (!p) return;
    std::size_t cls = (size + kGranule - 1) / kGranule;
    if (cls < kClasses) {
        auto* b = static_cast<FreeBlock*>(p);
        b->next = cache.heads[cls == 0 ? 1 : cls];
        cache.heads[cls == 0 ? 1 : cls] = b;
        return;
    }
    std::free(p);
}

#endif

}  // namespace corio::detail
