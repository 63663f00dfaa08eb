// The io_uring backend's receive side for stream sockets: a ring of provided buffers that
// multishot receives fill, and per socket the bytes received that nobody has read yet, still
// inside those buffers. Internal to src/io (uring_multishot.cpp drives it).
#pragma once

#if defined(CORIO_HAVE_IO_URING)
#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "corio/backend.hpp"

namespace corio::detail::uring {

// One registered buffer ring (group kGroup): the kernel takes a buffer per receive completion,
// and each goes back as soon as its bytes are read.
class BufferRing {
public:
    static constexpr int kGroup = 0;

    BufferRing() = default;
    BufferRing(const BufferRing&) = delete;
    BufferRing& operator=(const BufferRing&) = delete;
    // The io_uring must be gone (io_uring_queue_exit) before: the kernel may write into the
    // buffers until then.
    ~BufferRing();

    // Registers `count` (a power of two) buffers of `size` bytes. False, with nothing held, when
    // the kernel refuses (too old: EINVAL; forbidden: EPERM) or memory is short.
    bool setup(io_uring& ring, unsigned count, unsigned size) noexcept;
    // Unmaps the buffers (as the destructor does; the same conditions hold): not ready() after.
    void release() noexcept;
    bool ready() const noexcept { return ring_ != nullptr; }
    unsigned count() const noexcept { return count_; }
    unsigned size() const noexcept { return size_; }
    // Buffers the kernel has filled and nobody has given back yet.
    unsigned taken() const noexcept { return taken_; }
    char* data(unsigned bid) const noexcept { return base_ + std::size_t(bid) * size_; }

    void note_taken() noexcept { ++taken_; }
    void give_back(unsigned bid) noexcept;

private:
    io_uring_buf_ring* ring_ = nullptr;
    std::size_t ring_bytes_ = 0;
    char* base_ = nullptr;
    std::size_t base_bytes_ = 0;
    unsigned count_ = 0;
    unsigned size_ = 0;
    unsigned taken_ = 0;
};

struct Chunk {
    std::uint16_t bid = 0;
    std::uint32_t offset = 0;  // bytes of the buffer already read
    std::uint32_t length = 0;  // bytes of the buffer not yet read
};

// What one socket's multishot receive has brought and nobody has read yet: bytes in order, then
// at most one end (0: EOF, or -errno), which comes after every byte.
class RecvQueue {
public:
    bool has_bytes() const noexcept { return bytes_ != 0; }
    bool has_end() const noexcept { return has_end_; }
    // A read would complete now, with bytes or the end.
    bool readable() const noexcept { return bytes_ != 0 || has_end_; }
    std::size_t bytes() const noexcept { return bytes_; }
    std::size_t buffers() const noexcept { return chunks_.size() - head_; }

    // The buffer is the queue's until take() or clear() gives it back.
    void push(unsigned bid, unsigned length);
    void set_end(long result) noexcept {
        has_end_ = true;
        end_ = result;
    }
    // Serves a read (Read, Recv, ReadV) as the syscall would: the bytes that fit (MSG_PEEK:
    // leaves them queued), or, with no byte queued, the end (consumed: the socket reports it
    // itself afterwards). Call only when readable().
    long take(IoOperation& op, BufferRing& ring) noexcept;
    // Gives every buffer back and forgets the end; the chunk vector keeps its memory.
    void clear(BufferRing& ring) noexcept;

private:
    std::vector<Chunk> chunks_;
    std::size_t head_ = 0;
    std::size_t bytes_ = 0;
    bool has_end_ = false;
    long end_ = 0;
};

}  // namespace corio::detail::uring

#endif
