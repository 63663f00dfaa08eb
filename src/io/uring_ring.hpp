// The io_uring backend's ring: its setup (deferred task work where the kernel has it, the
// provided buffers when asked for), and its owning thread. Internal to src/io.
#pragma once

#if defined(CORIO_HAVE_IO_URING)
#include <liburing.h>

#include <atomic>
#include <cstdint>

#include "uring_recv_queue.hpp"

namespace corio::detail::uring {

class Ring {
public:
    // `buffer_count` provided buffers of `buffer_size` bytes (0: none). Throws std::system_error
    // when the kernel refuses a ring.
    Ring(unsigned buffer_count, unsigned buffer_size);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    io_uring* get() noexcept { return &ring_; }
    // IORING_SETUP_DEFER_TASKRUN: completions come only when poll() asks for them.
    bool deferred() const noexcept { return deferred_; }
    BufferRing& buffers() noexcept { return buffers_; }
    const BufferRing& buffers() const noexcept { return buffers_; }

    // False when the calling thread must take the ring first (take_over): a deferred ring has
    // one submitting thread.
    bool owned_here() const noexcept { return !deferred_ || (!disabled_ && owner_ == this_thread_serial()); }
    // Another thread submits to this ring: this one may not, not even to cancel.
    bool owned_elsewhere() const noexcept { return deferred_ && !disabled_ && owner_ != this_thread_serial(); }
    // Makes the calling thread the ring's submitter: the first time by enabling it; later, when
    // the loop runs on another thread, by opening a new ring, which only an `idle` one allows
    // (what is in the kernel stays with the old thread's ring): std::logic_error otherwise.
    // True when it opened a new ring (whatever the old one held is gone).
    bool take_over(bool idle);
    // Opens a new ring, not yet owned by any thread, and drops the old one with whatever it
    // held in the kernel (cancelled there). The provided buffers are set up again, empty.
    void replace();

    // The next submission entry; a full submission queue is handed to the kernel first.
    io_uring_sqe* next_sqe();
    // The same, or nullptr when the queue is still full after that (the kernel refuses more
    // while its completion ring overflows).
    io_uring_sqe* try_sqe() noexcept {
        if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
        io_uring_submit(&ring_);
        return io_uring_get_sqe(&ring_);
    }

    // Which thread this is, never reused (a pthread_t, a thread-local's address and a tid may
    // all come back for a later thread, which the kernel sees as another submitter).
    static std::uint64_t this_thread_serial() noexcept {
        static std::atomic<std::uint64_t> next{1};
        // Constant-initialised: no guard on each call (every submission asks).
        static thread_local std::uint64_t serial = 0;
        if (serial == 0) [[unlikely]]
            serial = next.fetch_add(1, std::memory_order_relaxed);
        return serial;
    }

private:
    void open();
    void setup_buffers() noexcept;

    io_uring ring_{};
    BufferRing buffers_;
    unsigned buffer_count_;
    unsigned buffer_size_;
    bool deferred_ = false;
    bool disabled_ = false;    // waits for take_over()
    std::uint64_t owner_ = 0;  // the thread take_over() enabled it for
};

}  // namespace corio::detail::uring

#endif
