// Recycles coroutine frames and task states per thread, so that steady-state task creation
// does not reach malloc (clang and g++ never elide these allocations; see compiler-bugs K3).
#pragma once

#include <cstddef>

namespace corio::detail {

// Blocks come in 8-byte size classes. A block whose size is a multiple of 16 is aligned to 16
// (the default new alignment), any other to 8: enough for any object of that size, since an
// object that needs 16 has a size that is a multiple of 16.
void* frame_alloc(std::size_t size);
void frame_free(void* p, std::size_t size) noexcept;

// A coroutine frame must be aligned to __STDCPP_DEFAULT_NEW_ALIGNMENT__ whatever its size
// (clang stores 16-byte vectors into frames with aligned moves), so its size is rounded up.
constexpr std::size_t frame_block_size(std::size_t size) noexcept {
    constexpr std::size_t a = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
    return (size + a - 1) & ~(a - 1);
}

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

// The same for a coroutine promise, whose operator new allocates the whole frame.
struct RecycledFrame {
    static void* operator new(std::size_t size) { return frame_alloc(frame_block_size(size)); }
    static void operator delete(void* p, std::size_t size) noexcept {
        frame_free(p, frame_block_size(size));
    }
};

}  // namespace corio::detail
