// The loop's ready queue (see ready_ring.hpp).
#include "corio/detail/ready_ring.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "corio/detail/frame_alloc.hpp"

namespace corio::detail {

namespace {
std::size_t page_size() noexcept {
    static const std::size_t size = std::size_t(::sysconf(_SC_PAGESIZE));
    return size;
}
}  // namespace

ReadyRing::ReadyRing() : capacity_(page_size() / sizeof(std::uintptr_t)) {
    void* p = ::mmap(nullptr, page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    slots_ = static_cast<std::uintptr_t*>(p);
}

ReadyRing::~ReadyRing() { ::munmap(slots_, capacity_ * sizeof(std::uintptr_t)); }

// Full: the ring doubles. Entry k from the head sits at (h + k) mod capacity, h = the head's
// slot; after doubling it belongs at h + k, which is where it already is unless it had wrapped
// round to the front: only those (the first h slots) move, to just past the old end.
void ReadyRing::grow() {
    const std::size_t old_bytes = capacity_ * sizeof(std::uintptr_t);
    void* p = ::mremap(slots_, old_bytes, 2 * old_bytes, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw std::bad_alloc();
    slots_ = static_cast<std::uintptr_t*>(p);
    // The new half's pages in one call rather than a fault per 4 KiB as they fill.
    populate_pages(slots_ + capacity_, old_bytes);
    const std::size_t h = head_ & (capacity_ - 1);
    std::memcpy(slots_ + capacity_, slots_, h * sizeof(std::uintptr_t));
    head_ = h;
    tail_ = h + capacity_;
    capacity_ *= 2;
}

}  // namespace corio::detail
