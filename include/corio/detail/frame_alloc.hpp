// Recycles coroutine frames and task states per thread, so that steady-state task creation
// does not reach malloc (clang and g++ never elide these allocations; see compiler-bugs K3).
#pragma once

#include <cstddef>

namespace corio::detail {

void* frame_alloc(std::size_t size);
void frame_free(void* p, std::size_t size) noexcept;

// This thread's counts: blocks taken from malloc, and blocks served from the free lists.
struct FrameAllocStats {
    std::size_t fresh = 0;
    std::size_t reused = 0;
};
FrameAllocStats frame_alloc_stats() noexcept;

// Makes the whole pages inside [p, p + bytes) resident in one call (MADV_POPULATE_WRITE), so a
// burst that touches fresh memory takes no page fault per 4 KiB. Failure (a kernel before 5.14)
// only means the pages fault in later.
void populate_pages(void* p, std::size_t bytes) noexcept;

// Mix-in giving a class the recycling allocator.
struct Recycled {
    static void* operator new(std::size_t size) { return frame_alloc(size); }
    static void operator delete(void* p, std::size_t size) noexcept { frame_free(p, size); }
};

}  // namespace corio::detail
