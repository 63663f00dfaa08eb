// The loop's ready queue: a FIFO of one-word entries in a power-of-two ring, in memory mapped
// for it, so that a burst that grows it (a million tasks created at once) is moved by the
// kernel's page tables (mremap) instead of copied, and never holds two copies at once.
#pragma once

#include <cstddef>
#include <cstdint>

namespace corio::detail {

class ReadyRing {
public:
    ReadyRing();  // one page; throws std::bad_alloc
    ~ReadyRing();
    ReadyRing(const ReadyRing&) = delete;
    ReadyRing& operator=(const ReadyRing&) = delete;

    void push(std::uintptr_t item) {
        if (tail_ - head_ == capacity_) grow();
        slots_[tail_++ & (capacity_ - 1)] = item;
    }
    // Only when size() != 0.
    std::uintptr_t pop() noexcept { return slots_[head_++ & (capacity_ - 1)]; }
    std::size_t size() const noexcept { return tail_ - head_; }
    std::size_t capacity() const noexcept { return capacity_; }
    // The i-th entry from the head (i < size()).
    std::uintptr_t& operator[](std::size_t i) noexcept { return slots_[(head_ + i) & (capacity_ - 1)]; }

private:
    void grow();

    std::uintptr_t* slots_;
    std::size_t capacity_;
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
};

}  // namespace corio::detail
