// The io_uring backend's class, shared by its two halves: io_uring_backend.cpp (submission,
// one-shot entries in per-fd order, poll, cancellation, the ring's owner) and
// uring_multishot.cpp (stream sockets read through multishot receives into provided buffers).
// Internal to src/io.
#pragma once

#if defined(CORIO_HAVE_IO_URING)
#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "corio/backend.hpp"
#include "op_queue.hpp"
#include "uring_recv_queue.hpp"
#include "uring_ring.hpp"

namespace corio::detail::uring {

// Where an operation is (IoOperation::where_).
enum : std::uint8_t {
    Idle = 0,
    InFlight = 1,  // a submission entry with the operation as user data
    Waiting = 2,   // on its socket's list of waiters, for its multishot receive
    Ready = 3,     // completed without the kernel; delivered by the next poll()
    Queued = 4,    // behind another operation of the same direction on its fd, not yet submitted
};
// IoOperation::progress_ of a one-shot read on a socket whose multishot receive is not armed:
// the socket counts it, so that no multishot starts while it may still take bytes first.
constexpr std::uint8_t kCountedRead = 1;
// ... of an operation in the kernel whose cancel found the submission ring full: it waits on
// the backend's list, and goes out at the next poll().
constexpr std::uint8_t kCancelLater = 2;
// ... of an operation still in the kernel whose fd was released: no longer in its fd's lane,
// it waits on the backend's list of orphans, so that dropping the ring can still complete it
// (one whose own cancel is still to go stays on cancel_later_, which the drop walks too).
constexpr std::uint8_t kOrphan = 4;

// User data of completions that belong to no operation. Aligned: an odd user data word is a
// multishot receive's (Backend::tag_of()).
alignas(8) inline char g_cancel_marker;
alignas(8) inline char g_wake_marker;

// Beyond this much unread, a socket's multishot receive is cancelled (re-armed when its reader
// has read everything and waits again): one idle reader must not take the whole ring, and the
// sender must feel TCP's back-pressure.
constexpr std::size_t kMaxQueuedBytes = 256 * 1024;

// The lanes of one fd: writes (readiness waits for output with them: a datagram send waits
// with one, then sends), reads, and readiness waits for input. Operations of one lane go to the
// kernel one at a time, in order, since the kernel serves those waiting on one file newest
// first. A wait for input consumes nothing, so a read does not queue behind one (wait_closed()'s
// watch, ahead of a stream reader's next read, cost each read a loop iteration).
constexpr int kLanes = 3;
inline int lane(IoOperation::Kind k) noexcept {
    if (k == IoOperation::Kind::PollIn) return 2;
    return detail::reads(k) ? 1 : 0;
}

inline bool is_read_kind(IoOperation::Kind k) {
    using K = IoOperation::Kind;
    return k == K::Read || k == K::Recv || k == K::ReadV;
}

class Backend final : public IoBackend {
public:
    // Provided buffers: how many, of what size (0: none, every read is a one-shot entry).
    explicit Backend(std::pair<unsigned, unsigned> buffers);
    ~Backend() override;

    const char* name() const noexcept override { return "io_uring"; }
    std::size_t pending() const noexcept override { return pending_; }
    bool readiness_based() const noexcept override { return false; }

    void submit(IoOperation& op) override;
    long attempt_now(IoOperation& op) noexcept override;
    void cancel(IoOperation& op) override;
    void release_fd(int fd) noexcept override;
    void cancel_all() noexcept override;
    std::size_t poll(std::chrono::nanoseconds timeout) override;
    void wakeup() noexcept override;

    detail::ProvidedBufferStats stats() const noexcept;

private:
    enum : std::uint8_t { Unknown = 0, Stream = 1, Other = 2 };

    // Per fd: a socket's multishot receive and what it has queued, and the one-shot operations
    // in the kernel and in line behind them. Indexed by fd; the generation tells an old
    // socket's late completions from those of a new socket with the same number.
    struct FdState {
        std::uint32_t gen = 0;
        std::uint8_t type = Unknown;
        bool armed = false;        // a multishot receive is in the kernel (until its last CQE)
        bool cancel_sent = false;  // ... and is being cancelled (the queue is full)
        bool starved = false;      // the ring ran dry (ENOBUFS) under the last one
        unsigned counted_reads = 0;
        detail::OpQueue waiters;
        // The one-shot operation of each lane in the kernel, and those queued behind it.
        IoOperation* in_flight[kLanes] = {};
        detail::OpQueue queued[kLanes];
        RecvQueue queue;
    };

    static std::uint64_t tag_of(int fd, std::uint32_t gen) {
        return (std::uint64_t(gen) << 32) | (std::uint64_t(std::uint32_t(fd)) << 1) | 1;
    }

    // uring_multishot.cpp
    // A read or readiness wait on a stream socket, when provided buffers are on: served from
    // the socket's queue, or made a waiter of its multishot receive. False: a one-shot entry.
    bool submit_to_multishot(IoOperation& op);
    // attempt_now() of a read on a socket read through the ring; false: make the syscall.
    bool attempt_from_queue(IoOperation& op, long& result) noexcept;
    FdState* stream_state(int fd);
    void arm(int fd, FdState& s);
    void stop(int fd, FdState& s);
    void on_recv(std::uint64_t tag, int res, unsigned flags);
    void serve_waiters(FdState& s);
    void finish_now(FdState& s, IoOperation& op);

    // io_uring_backend.cpp
    // Ready operations form a FIFO through next_ (free once off the waiters' list): no
    // allocation, so forget() cannot fail.
    void make_ready(IoOperation& op, long result) noexcept {
        op.result_ = result;
        op.where_ = Ready;
        op.next_ = op.prev_ = nullptr;
        if (ready_tail_)
            ready_tail_->next_ = &op;
        else
            ready_head_ = &op;
        ready_tail_ = &op;
    }
    // Whether op's fd still has it in flight (not released since).
    bool holds(const IoOperation& op) const noexcept {
        return op.fd >= 0 && std::size_t(op.fd) < fds_.size() && fds_[std::size_t(op.fd)].in_flight[lane(op.kind)] == &op;
    }
    // Off the list that holds an operation in the kernel (through next_/prev_), if any.
    void unlist(IoOperation& op) noexcept {
        if (op.progress_ & kCancelLater) cancel_later_.remove(&op);
        if (op.progress_ & kOrphan) orphans_.remove(&op);
        op.progress_ &= std::uint8_t(~(kCancelLater | kOrphan));
    }
    void uncount_read(IoOperation& op);
    void forget(FdState& s) noexcept;
    void start_one_shot(IoOperation& op);
    void start_or_fail(IoOperation& op) noexcept;
    void start_next_after(IoOperation& op);
    void drop_the_kernels_operations() noexcept;
    // Runs the completions of the operations made ready (poll()'s last step).
    std::size_t deliver_ready() noexcept;
    void own();
    io_uring_sqe* next_sqe() {
        own();
        return ring_.next_sqe();
    }
    void arm_wakeup();

    Ring ring_;
    int wakefd_ = -1;
    std::uint64_t wake_value_ = 0;
    bool wake_armed_ = false;
    std::size_t pending_ = 0;
    std::size_t in_kernel_ = 0;  // one-shot entries submitted and not yet completed
    detail::OpQueue restart_;    // queued operations whose turn came in this poll()
    detail::OpQueue cancel_later_;  // in the kernel, their cancel not yet submitted (kCancelLater)
    detail::OpQueue orphans_;       // in the kernel, their fd released (kOrphan)
    IoOperation* ready_head_ = nullptr;
    IoOperation* ready_tail_ = nullptr;
    std::vector<FdState> fds_;
    std::size_t max_queued_buffers_ = 0;
    std::size_t nobufs_ = 0;
};

}  // namespace corio::detail::uring

#endif
