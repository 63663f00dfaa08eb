// Per-thread free lists by size class. Frames and task states of a steady workload are
// recycled without touching malloc; sanitizer builds use plain new/delete so that ASan still
// sees every use-after-free.
#include "corio/detail/frame_alloc.hpp"

#include <cstdlib>
#include <new>

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
constexpr std::size_t kClasses = 64;  // blocks up to 1 KiB are recycled
constexpr std::size_t kMaxCached = 1 << 16;  // per class: bounds what a burst leaves behind

struct FreeBlock {
    FreeBlock* next;
};

struct Cache {
    FreeBlock* heads[kClasses] = {};
    std::size_t counts[kClasses] = {};
    ~Cache() {
        for (auto*& h : heads) {
            while (h) {
                FreeBlock* n = h->next;
                std::free(h);
                h = n;
            }
        }
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
            --cache.counts[cls];
            ++stats.reused;
            return b;
        }
        ++stats.fresh;
        void* p = std::malloc(cls * kGranule);
        if (!p) throw std::bad_alloc();
        return p;
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
    if (cls < kClasses && cache.counts[cls] < kMaxCached) {
        auto* b = static_cast<FreeBlock*>(p);
        b->next = cache.heads[cls];
        cache.heads[cls] = b;
        ++cache.counts[cls];
        return;
    }
    std::free(p);
}

#endif

}  // namespace corio::detail
