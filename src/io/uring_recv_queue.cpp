// Provided buffers and the per-socket queue of received bytes (see uring_recv_queue.hpp).
#include "uring_recv_queue.hpp"

#if defined(CORIO_HAVE_IO_URING)
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

namespace corio::detail::uring {

BufferRing::~BufferRing() { release(); }

void BufferRing::release() noexcept {
    if (ring_) ::munmap(ring_, ring_bytes_);
    if (base_) ::munmap(base_, base_bytes_);
    ring_ = nullptr;
    base_ = nullptr;
    count_ = size_ = taken_ = 0;
}

bool BufferRing::setup(io_uring& ring, unsigned count, unsigned size) noexcept {
    if (count == 0 || count > 32768 || (count & (count - 1)) != 0 || size == 0) return false;
    // mmap: page-aligned as the kernel wants the ring, and the buffers' pages are touched only
    // as they are first filled.
    std::size_t ring_bytes = std::size_t(count) * sizeof(io_uring_buf);
    void* r = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) return false;
    std::size_t base_bytes = std::size_t(count) * size;
    void* b = ::mmap(nullptr, base_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) {
        ::munmap(r, ring_bytes);
        return false;
    }
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(r);
    reg.ring_entries = count;
    reg.bgid = kGroup;
    if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) {
        ::munmap(r, ring_bytes);
        ::munmap(b, base_bytes);
        return false;
    }
    ring_ = static_cast<io_uring_buf_ring*>(r);
    ring_bytes_ = ring_bytes;
    base_ = static_cast<char*>(b);
    base_bytes_ = base_bytes;
    count_ = count;
    size_ = size;
    io_uring_buf_ring_init(ring_);
    int mask = io_uring_buf_ring_mask(count);
    for (unsigned i = 0; i < count; ++i) io_uring_buf_ring_add(ring_, data(i), size, static_cast<unsigned short>(i), mask, int(i));
    io_uring_buf_ring_advance(ring_, int(count));
    return true;
}

void BufferRing::give_back(unsigned bid) noexcept {
    io_uring_buf_ring_add(ring_, data(bid), size_, static_cast<unsigned short>(bid), io_uring_buf_ring_mask(count_), 0);
    io_uring_buf_ring_advance(ring_, 1);
    --taken_;
}

void RecvQueue::push(unsigned bid, unsigned length) {
    if (head_ == chunks_.size()) {
        chunks_.clear();
        head_ = 0;
    }
    chunks_.push_back(Chunk{static_cast<std::uint16_t>(bid), 0, length});
    bytes_ += length;
}

long RecvQueue::take(IoOperation& op, BufferRing& ring) noexcept {
    if (bytes_ == 0) {
        has_end_ = false;
        return end_;
    }
    // The caller's memory as a list of pieces: one for Read/Recv, the iovecs for ReadV.
    iovec single{op.buffer, op.length};
    const iovec* iov = &single;
    std::size_t pieces = 1;
    if (op.kind == IoOperation::Kind::ReadV) {
        iov = static_cast<const iovec*>(op.buffer);
        pieces = op.length;
    }
    const bool peek = op.kind == IoOperation::Kind::Recv && (op.flags & MSG_PEEK) != 0;
    std::size_t total = 0;
    std::size_t c = head_;
    std::size_t in_chunk = 0;  // peek: how much of chunks_[c] this call has copied
    for (std::size_t p = 0; p < pieces && c < chunks_.size(); ++p) {
        char* to = static_cast<char*>(iov[p].iov_base);
        std::size_t room = iov[p].iov_len;
        while (room > 0 && c < chunks_.size()) {
            Chunk& ch = chunks_[c];
            std::size_t n = std::min<std::size_t>(room, ch.length - in_chunk);
            std::memcpy(to, ring.data(ch.bid) + ch.offset + in_chunk, n);
            to += n;
            room -= n;
            total += n;
            in_chunk += n;
            if (in_chunk == ch.length) {
                ++c;
                in_chunk = 0;
            }
        }
    }
    if (peek) return long(total);
    // Consume what was copied: whole chunks go back to the ring, the last one may stay in part.
    for (; head_ < c; ++head_) ring.give_back(chunks_[head_].bid);
    if (in_chunk > 0) {
        chunks_[head_].offset += std::uint32_t(in_chunk);
        chunks_[head_].length -= std::uint32_t(in_chunk);
    }
    bytes_ -= total;
    if (head_ == chunks_.size()) {
        chunks_.clear();
        head_ = 0;
    }
    return long(total);
}

void RecvQueue::clear(BufferRing& ring) noexcept {
    for (; head_ < chunks_.size(); ++head_) ring.give_back(chunks_[head_].bid);
    chunks_.clear();
    head_ = 0;
    bytes_ = 0;
    has_end_ = false;
    end_ = 0;
}

}  // namespace corio::detail::uring

#endif
