// The io_uring backend: operations are prepared as submission entries and sent to the kernel
// in one batch per loop tick (io_uring_submit_and_wait_timeout); completions come back with
// the IoOperation as user data. Cancellation is an ASYNC_CANCEL entry: the operation still
// completes, with -ECANCELED or its real result, so its buffer stays valid until then.
//
// Stream sockets are read through a multishot receive into provided buffers
// (uring_recv_queue.hpp): armed the first time a reader waits, it stays armed and queues what
// arrives, so a read or a readiness wait that finds bytes queued completes without a syscall or
// a submission entry, and attempt_now() copies from the queue. Pipes, files, datagram and
// listening sockets keep one-shot entries.
#include "corio/backend.hpp"

#if defined(CORIO_HAVE_IO_URING)
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "op_queue.hpp"
#include "uring_prep.hpp"
#include "uring_recv_queue.hpp"
#include "uring_ring.hpp"

namespace corio {

namespace {

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

// Cancel-by-fd (used when an fd is about to be closed) needs 5.19.
bool kernel_is_recent_enough() {
    utsname u{};
    if (::uname(&u) != 0) return false;
    int major = 0, minor = 0;
    if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
    return major > 5 || (major == 5 && minor >= 19);
}

// Markers for completions that belong to no operation. Aligned: an odd user data word is a
// multishot receive's (tag_of()).
alignas(8) char g_cancel_marker;
alignas(8) char g_wake_marker;

// Multishot receives are off unless CORIO_IO_URING_BUFFERS asks for them ("on": 256 buffers of
// 16 KiB, 4 MiB of address space touched as used; or "COUNTxSIZE"): on the echo benchmark they
// save no syscall (one io_uring_enter already serves ~50 requests; armed receives make poll()
// enter more often, not less) and the copy out of the ring costs 1-2 % at 1 and 10 KiB
// (docs/reference/backend.md has the numbers).
constexpr unsigned kDefaultBuffers = 256;
constexpr unsigned kDefaultBufferSize = 16 * 1024;
// Beyond this much unread, a socket's multishot receive is cancelled (re-armed when its reader
// has read everything and waits again): one idle reader must not take the whole ring, and the
// sender must feel TCP's back-pressure.
constexpr std::size_t kMaxQueuedBytes = 256 * 1024;

// CORIO_IO_URING_BUFFERS: how many provided buffers, of what size (0: none).
std::pair<unsigned, unsigned> buffers_wanted() {
    const char* env = std::getenv("CORIO_IO_URING_BUFFERS");
    if (!env || !*env) return {0, 0};
    if (std::strcmp(env, "on") == 0) return {kDefaultBuffers, kDefaultBufferSize};
    unsigned count = 0, size = 0;
    if (std::sscanf(env, "%ux%u", &count, &size) != 2) return {0, 0};  // "0", "off" (or anything else)
    return {count, size};
}

bool is_read_kind(IoOperation::Kind k) {
    using K = IoOperation::Kind;
    return k == K::Read || k == K::Recv || k == K::ReadV;
}

bool is_read_or_poll_in(IoOperation::Kind k) { return is_read_kind(k) || k == IoOperation::Kind::PollIn; }

class IoUringBackend final : public IoBackend {
public:
    IoUringBackend() : IoUringBackend(buffers_wanted()) {}
    explicit IoUringBackend(std::pair<unsigned, unsigned> buffers) : ring_(buffers.first, buffers.second) {
        if (ring_.buffers().ready()) max_queued_buffers_ = std::max<std::size_t>(2, kMaxQueuedBytes / ring_.buffers().size());
        wakefd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wakefd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    }
    ~IoUringBackend() override { ::close(wakefd_); }

    const char* name() const noexcept override { return "io_uring"; }
    std::size_t pending() const noexcept override { return pending_; }

    detail::ProvidedBufferStats stats() const noexcept {
        detail::ProvidedBufferStats s;
        s.available = ring_.buffers().ready();
        s.buffers = ring_.buffers().count();
        s.buffer_size = ring_.buffers().size();
        s.taken = ring_.buffers().taken();
        s.nobufs = nobufs_;
        for (const FdState& f : fds_) s.armed += f.armed ? 1 : 0;
        return s;
    }

    void submit(IoOperation& op) override {
        if (op.where_ != Idle) throw std::logic_error("corio: I/O operation submitted twice");
        op.progress_ = 0;
        if (ring_.buffers().ready() && is_read_or_poll_in(op.kind)) {
            if (FdState* s = stream_state(op.fd)) {
                if (s->queue.readable() && s->waiters.empty()) {
                    finish_now(*s, op);
                    ++pending_;
                    return;
                }
                const bool poll = op.kind == IoOperation::Kind::PollIn;
                if (!s->armed && s->counted_reads == 0 && s->waiters.empty() && !poll) arm(op.fd, *s);
                if (s->armed) {
                    add_waiter(*s, op);
                    ++pending_;
                    // A readiness wait is how the streams wait while messages are big: they
                    // read them with one readv straight from the socket (the ring's buffers
                    // would cost a copy more, 20 % at 100 KiB), so the multishot stops.
                    if (poll) stop(op.fd, *s);
                    return;
                }
                if (!poll) {
                    // No multishot (the ring ran dry, or a one-shot read is still out).
                    op.progress_ |= kCountedRead;
                    std::memcpy(op.scratch_, &s->gen, sizeof s->gen);
                    ++s->counted_reads;
                }
            }
        }
        start_one_shot(op);
        ++pending_;
    }

    long attempt_now(IoOperation& op) noexcept override {
        if (is_read_kind(op.kind) && op.fd >= 0 && std::size_t(op.fd) < fds_.size()) {
            FdState& s = fds_[std::size_t(op.fd)];
            if (s.type == Stream) {
                if (s.queue.readable()) return s.queue.take(op, ring_.buffers());
                // Whatever arrives goes to the multishot's buffers: a syscall would only find
                // the socket empty (or, worse, take bytes out of order).
                if (s.armed) return -EAGAIN;
            }
        }
        return detail::transfer_now(op);
    }
    bool readiness_based() const noexcept override { return false; }

    void cancel(IoOperation& op) override {
        if (op.where_ == Waiting || op.where_ == Queued) {
            FdState& s = fds_[std::size_t(op.fd)];
            (op.where_ == Waiting ? s.waiters : s.queued[detail::reads(op.kind)]).remove(&op);
            if ((op.progress_ & kCountedRead)) uncount_read(op);
            make_ready(op, -ECANCELED);
            return;
        }
        if (op.where_ != InFlight || (op.progress_ & kCancelLater)) return;
        own();
        io_uring_sqe* sqe = ring_.try_sqe();
        if (!sqe) {
            // No room even after a submit (the kernel refuses more while its completion ring
            // overflows): asked at the next poll(), once the completions are reaped.
            op.progress_ |= kCancelLater;
            cancel_later_.push(&op);
            return;
        }
        io_uring_prep_cancel(sqe, &op, 0);
        io_uring_sqe_set_data(sqe, &g_cancel_marker);
    }

    void release_fd(int fd) noexcept override {
        bool in_kernel = pending_ > 0;
        if (fd >= 0 && std::size_t(fd) < fds_.size()) {
            FdState& s = fds_[std::size_t(fd)];
            in_kernel = in_kernel || s.armed;
            forget(s);
        }
        if (!in_kernel) return;
        io_uring_sqe* sqe;
        try {
            own();
            sqe = next_sqe();
        } catch (const std::exception&) {
            // A ring that cannot start holds nothing of ours; a full one, or one another thread
            // owns, cannot take the cancel: nothing to do.
            return;
        }
        io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data(sqe, &g_cancel_marker);
        // The fd is closed right after this: the cancellation must reach the kernel first.
        // With deferred task work, a cancelled operation keeps its file until the task work
        // runs, which is only when we ask for events: asked for now, so that the socket is
        // gone once close() returns (a rebind to its port works, the peer sees EOF). The
        // completions stay in the ring for poll().
        if (ring_.deferred())
            io_uring_submit_and_get_events(ring_.get());
        else
            io_uring_submit(ring_.get());
    }

    void cancel_all() noexcept override {
        if (ring_.owned_elsewhere()) drop_the_kernels_operations();
        bool any_armed = false;
        for (FdState& s : fds_) {
            any_armed = any_armed || s.armed;
            forget(s);
        }
        // Armed multishots complete nothing of anyone's now (their completions are stale), but
        // they hold their sockets open in the kernel: cancelled here, not waited for.
        bool cancel_sent = false;
        if (any_armed) {
            try {
                own();
                io_uring_sqe* sqe = next_sqe();
                io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
                io_uring_sqe_set_data(sqe, &g_cancel_marker);
                io_uring_submit(ring_.get());
                cancel_sent = true;
            } catch (const std::exception&) {
                // Refused (a full ring, or another thread's: see own()): the rounds below try.
            }
        }
        for (int round = 0; round < 100 && pending_ > 0; ++round) {
            if (io_uring_sqe* sqe = cancel_sent ? nullptr : io_uring_get_sqe(ring_.get())) {
                io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
                io_uring_sqe_set_data(sqe, &g_cancel_marker);
            }
            cancel_sent = false;
            try {
                poll(std::chrono::milliseconds(10));
            } catch (...) {
                break;
            }
        }
    }

    std::size_t poll(std::chrono::nanoseconds timeout) override {
        own();
        if (!wake_armed_) arm_wakeup();
        while (IoOperation* op = cancel_later_.head) {
            io_uring_sqe* sqe = ring_.try_sqe();
            if (!sqe) break;  // still full: next time
            unlist_cancel(*op);
            io_uring_prep_cancel(sqe, op, 0);
            io_uring_sqe_set_data(sqe, &g_cancel_marker);
        }
        // Operations finished at submit time are delivered now: no waiting for the kernel.
        if (ready_head_) timeout = std::chrono::nanoseconds(0);
        int rc;
        if (timeout.count() == 0) {
            // Deferred task work runs only when asked for; the kernel flags when there is some.
            const bool task_work = ring_.deferred() && (IO_URING_READ_ONCE(*ring_.get()->sq.kflags) & IORING_SQ_TASKRUN);
            rc = task_work ? io_uring_submit_and_get_events(ring_.get()) : io_uring_submit(ring_.get());
        } else {
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec ts{};
            __kernel_timespec* tsp = nullptr;
            if (timeout.count() > 0) {
                ts.tv_sec = timeout.count() / 1'000'000'000;
                ts.tv_nsec = timeout.count() % 1'000'000'000;
                tsp = &ts;
            }
            rc = io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, tsp, nullptr);
        }
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
            throw std::system_error(-rc, std::generic_category(), "io_uring_submit");
        // Collect first, then call back: a callback may submit (and so touch the rings).
        unsigned head;
        unsigned seen = 0;
        io_uring_cqe* cqe;
        io_uring_for_each_cqe(ring_.get(), head, cqe) {
            ++seen;
            std::uint64_t data = cqe->user_data;
            if (data & 1) {
                on_recv(data, cqe->res, cqe->flags);
                continue;
            }
            void* ptr = reinterpret_cast<void*>(static_cast<std::uintptr_t>(data));
            if (ptr == &g_cancel_marker || ptr == nullptr) continue;
            if (ptr == &g_wake_marker) {
                wake_armed_ = false;
                continue;
            }
            auto* op = static_cast<IoOperation*>(ptr);
            long res = cqe->res;
            using K = IoOperation::Kind;
            if ((op->kind == K::PollIn || op->kind == K::PollOut) && res > 0) res = 0;
            if (op->kind == K::RecvFrom && res >= 0)
                op->address_length = detail::uring::received_name_length(*op);
            if ((op->progress_ & kCountedRead)) uncount_read(*op);
            unlist_cancel(*op);
            --in_kernel_;
            start_next_after(*op);
            make_ready(*op, res);
        }
        io_uring_cq_advance(ring_.get(), seen);
        // Only now (a failure must not leave completions unadvanced, to be seen twice).
        while (IoOperation* next = restart_.pop()) start_or_fail(*next);
        // What the callbacks make ready waits for the next poll().
        IoOperation* op = ready_head_;
        ready_head_ = ready_tail_ = nullptr;
        std::size_t n = 0;
        while (op) {
            IoOperation* next = op->next_;
            op->next_ = nullptr;
            op->where_ = Idle;
            --pending_;
            ++n;
            op->complete(op, op->result_);
            op = next;
        }
        return n;
    }

    void wakeup() noexcept override {
        std::uint64_t one = 1;
        ssize_t r;
        do {
            r = ::write(wakefd_, &one, sizeof one);
        } while (r < 0 && errno == EINTR);
    }

private:
    enum : std::uint8_t { Unknown = 0, Stream = 1, Other = 2 };


    // A socket's multishot receive and what it has queued. Indexed by fd; the generation tells
    // an old socket's late completions from those of a new socket with the same number.
    struct FdState {
        std::uint32_t gen = 0;
        std::uint8_t type = Unknown;
        bool armed = false;        // a multishot receive is in the kernel (until its last CQE)
        bool cancel_sent = false;  // ... and is being cancelled (the queue is full)
        bool starved = false;      // the ring ran dry (ENOBUFS) under the last one
        unsigned counted_reads = 0;
        detail::OpQueue waiters;
        // The one-shot operation of each direction (detail::reads) in the kernel, and those
        // queued behind it: the kernel serves operations waiting on one file newest first.
        IoOperation* in_flight[2] = {nullptr, nullptr};
        detail::OpQueue queued[2];
        detail::uring::RecvQueue queue;
    };

    static std::uint64_t tag_of(int fd, std::uint32_t gen) {
        return (std::uint64_t(gen) << 32) | (std::uint64_t(std::uint32_t(fd)) << 1) | 1;
    }

    // The state of `fd` when it is a connected stream socket, checked once per fd (until
    // release_fd); nullptr otherwise.
    FdState* stream_state(int fd) {
        if (fd < 0) return nullptr;
        if (std::size_t(fd) >= fds_.size()) fds_.resize(std::size_t(fd) + 1);
        FdState& s = fds_[std::size_t(fd)];
        if (s.type == Unknown) {
            int type = 0, listening = 0;
            socklen_t len = sizeof type;
            bool stream = ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
            len = sizeof listening;
            if (stream) stream = ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening == 0;
            s.type = stream ? Stream : Other;
        }
        return s.type == Stream ? &s : nullptr;
    }

    void arm(int fd, FdState& s) {
        // After ENOBUFS, wait until half the ring is back: re-arming into an empty ring would
        // only fail again.
        if (s.starved && ring_.buffers().taken() > ring_.buffers().count() / 2) return;
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = detail::uring::BufferRing::kGroup;
        io_uring_sqe_set_data64(sqe, tag_of(fd, s.gen));
        s.armed = true;
        s.cancel_sent = false;
        s.starved = false;
    }

    // Cancels the fd's multishot receive; it ends with a last completion, -ECANCELED.
    void stop(int fd, FdState& s) {
        if (!s.armed || s.cancel_sent) return;
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_cancel64(sqe, tag_of(fd, s.gen), 0);
        io_uring_sqe_set_data(sqe, &g_cancel_marker);
        s.cancel_sent = true;
    }

    void on_recv(std::uint64_t tag, int res, unsigned flags) {
        const bool has_buffer = (flags & IORING_CQE_F_BUFFER) != 0;
        const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (has_buffer) ring_.buffers().note_taken();
        const int fd = int(std::uint32_t(tag) >> 1);
        const auto gen = std::uint32_t(tag >> 32);
        if (std::size_t(fd) >= fds_.size() || fds_[std::size_t(fd)].gen != gen) {
            if (has_buffer) ring_.buffers().give_back(bid);  // an old socket's: nobody reads it now
            return;
        }
        FdState& s = fds_[std::size_t(fd)];
        if (!(flags & IORING_CQE_F_MORE)) s.armed = false;
        if (res > 0 && has_buffer) {
            s.queue.push(bid, unsigned(res));
        } else {
            if (has_buffer) ring_.buffers().give_back(bid);
            if (res == -ENOBUFS) {
                s.starved = true;
                ++nobufs_;
            } else if (res == -ENOTSOCK || res == -EBADF) {
                // Not the socket we checked (its fd was closed without release_fd): one-shot
                // entries from now on.
                s.type = Other;
            } else if (res != -ECANCELED && !s.queue.has_end()) {
                s.queue.set_end(res);  // 0: EOF; or the socket's error, after every byte
            }
        }
        serve_waiters(s);
        if (s.queue.bytes() >= kMaxQueuedBytes || s.queue.buffers() >= max_queued_buffers_) stop(fd, s);
        if (!s.armed && !s.waiters.empty()) {
            if (s.type == Stream && s.counted_reads == 0 && s.waiters.head->kind != IoOperation::Kind::PollIn) arm(fd, s);
            if (!s.armed) {
                // Nothing will come through the ring for them: one-shot entries, in order. Taken
                // off the list first: a read after a readiness wait arms the receive again, and
                // joins the list it would otherwise be taken from for ever.
                detail::OpQueue again = std::exchange(s.waiters, detail::OpQueue{});
                while (IoOperation* op = again.pop()) {
                    --pending_;
                    op->where_ = Idle;
                    submit(*op);
                }
            }
        }
    }

    // Completes waiters in order while the queue can serve them (a readiness wait does not
    // consume, so every one waiting completes).
    void serve_waiters(FdState& s) {
        while (!s.waiters.empty() && s.queue.readable()) {
            IoOperation& op = *s.waiters.pop();
            finish_now(s, op);
        }
    }

    void finish_now(FdState& s, IoOperation& op) {
        make_ready(op, op.kind == IoOperation::Kind::PollIn ? 0 : s.queue.take(op, ring_.buffers()));
    }

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

    void add_waiter(FdState& s, IoOperation& op) {
        op.where_ = Waiting;
        s.waiters.push(&op);
    }

    void unlist_cancel(IoOperation& op) noexcept {
        if (!(op.progress_ & kCancelLater)) return;
        cancel_later_.remove(&op);
        op.progress_ &= std::uint8_t(~kCancelLater);
    }

    void uncount_read(IoOperation& op) {
        op.progress_ &= std::uint8_t(~kCountedRead);
        std::uint32_t gen;
        std::memcpy(&gen, op.scratch_, sizeof gen);
        if (std::size_t(op.fd) < fds_.size() && fds_[std::size_t(op.fd)].gen == gen) --fds_[std::size_t(op.fd)].counted_reads;
    }

    // The fd is about to be closed (or the loop is): its waiters complete with -ECANCELED, its
    // buffers go back, and a multishot still in the kernel becomes stale (new generation).
    void forget(FdState& s) noexcept {
        for (detail::OpQueue* q : {&s.waiters, &s.queued[0], &s.queued[1]}) {
            while (IoOperation* op = q->pop()) make_ready(*op, -ECANCELED);
        }
        // What is still in the kernel completes as cancelled, or stale: it starts nothing.
        s.in_flight[0] = s.in_flight[1] = nullptr;
        if (ring_.buffers().ready()) s.queue.clear(ring_.buffers());
        ++s.gen;
        s.type = Unknown;
        s.armed = false;
        s.cancel_sent = false;
        s.starved = false;
        s.counted_reads = 0;
    }

    // One operation of a direction at a time goes to the kernel for a file; the others wait
    // their turn here, so that reads take bytes, and writes send them, in the order they came.
    void start_one_shot(IoOperation& op) {
        IoOperation** current = nullptr;
        if (op.fd >= 0) {
            if (std::size_t(op.fd) >= fds_.size()) fds_.resize(std::size_t(op.fd) + 64);
            FdState& s = fds_[std::size_t(op.fd)];
            current = &s.in_flight[detail::reads(op.kind)];
            if (*current) {
                s.queued[detail::reads(op.kind)].push(&op);
                op.where_ = Queued;
                return;
            }
        }
        io_uring_sqe* sqe = next_sqe();  // may throw: nothing is noted before it
        if (current) *current = &op;
        detail::uring::prepare_one_shot(*sqe, op);
        op.where_ = InFlight;
        ++in_kernel_;
    }

    // Starts an operation that waited its turn; one that cannot get an entry completes with the
    // error, and the next in line gets its turn.
    void start_or_fail(IoOperation& op) noexcept {
        long error;
        try {
            start_one_shot(op);
            return;
        } catch (const std::system_error& e) {
            error = -long(e.code().value());
        } catch (...) {
            error = -EIO;
        }
        if ((op.progress_ & kCountedRead)) uncount_read(op);
        make_ready(op, error);
        FdState& s = fds_[std::size_t(op.fd)];
        if (IoOperation* next = s.queued[detail::reads(op.kind)].pop()) restart_.push(next);
    }

    // `op` has completed: the next operation queued behind it goes to the kernel.
    void start_next_after(IoOperation& op) {
        if (op.fd < 0 || std::size_t(op.fd) >= fds_.size()) return;
        FdState& s = fds_[std::size_t(op.fd)];
        IoOperation*& current = s.in_flight[detail::reads(op.kind)];
        if (current != &op) return;  // its fd was released meanwhile
        current = nullptr;
        // Started once the completions are consumed (poll() does it).
        if (IoOperation* next = s.queued[detail::reads(op.kind)].pop()) restart_.push(next);
    }

    // The loop closes on a thread that may not submit to the ring (its owner may even be gone):
    // nothing can be cancelled through it, so it is replaced, and the operations it held in the
    // kernel complete here, cancelled (a deferred ring runs none of them once dropped: their
    // memory is not written to after this, however the loop then frees it).
    void drop_the_kernels_operations() noexcept {
        const bool armed = std::any_of(fds_.begin(), fds_.end(), [](const FdState& f) { return f.armed; });
        if (in_kernel_ == 0 && !armed) return;  // own() replaces an idle ring when it must
        // Queued bytes go back to the old ring's buffers first: the new ring has its own.
        if (ring_.buffers().ready())
            for (FdState& s : fds_) s.queue.clear(ring_.buffers());
        try {
            ring_.replace();
        } catch (...) {
            return;  // no new ring: the operations stay where they are
        }
        wake_armed_ = false;
        for (FdState& s : fds_) {
            for (IoOperation*& op : s.in_flight) {
                if (!op) continue;
                if ((op->progress_ & kCountedRead)) uncount_read(*op);
                unlist_cancel(*op);
                make_ready(*op, -ECANCELED);
                op = nullptr;
            }
            s.armed = false;
        }
        in_kernel_ = 0;
    }

    // A loop may run on one thread, then on another: the ring follows it while idle.
    void own() {
        if (ring_.owned_here()) return;
        const bool idle = in_kernel_ == 0 && ring_.buffers().taken() == 0 && io_uring_sq_ready(ring_.get()) == 0 &&
                          std::none_of(fds_.begin(), fds_.end(), [](const FdState& f) { return f.armed; });
        if (ring_.take_over(idle)) wake_armed_ = false;  // its read went with the old ring; the eventfd keeps any wakeup
    }

    io_uring_sqe* next_sqe() {
        own();
        return ring_.next_sqe();
    }

    void arm_wakeup() {
        io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
        if (!sqe) return;  // try again next tick
        io_uring_prep_read(sqe, wakefd_, &wake_value_, sizeof wake_value_, ~0ULL);
        io_uring_sqe_set_data(sqe, &g_wake_marker);
        wake_armed_ = true;
    }

    detail::uring::Ring ring_;
    int wakefd_ = -1;
    std::uint64_t wake_value_ = 0;
    bool wake_armed_ = false;
    std::size_t pending_ = 0;
    std::size_t in_kernel_ = 0;  // one-shot entries submitted and not yet completed
    detail::OpQueue restart_;    // queued operations whose turn came in this poll()
    detail::OpQueue cancel_later_;  // in the kernel, their cancel not yet submitted (kCancelLater)
    IoOperation* ready_head_ = nullptr;
    IoOperation* ready_tail_ = nullptr;
    std::vector<FdState> fds_;
    std::size_t max_queued_buffers_ = 0;
    std::size_t nobufs_ = 0;
};

}  // namespace

std::unique_ptr<IoBackend> make_io_uring_backend() {
    if (!kernel_is_recent_enough()) return nullptr;
    try {
        return std::make_unique<IoUringBackend>();
    } catch (const std::system_error&) {
        return nullptr;  // ENOSYS, EPERM (seccomp in containers), ENOMEM: epoll it is
    }
}

namespace detail {
ProvidedBufferStats provided_buffer_stats(const IoBackend& backend) noexcept {
    if (const auto* b = dynamic_cast<const IoUringBackend*>(&backend)) return b->stats();
    return {};
}
}  // namespace detail

}  // namespace corio

#else  // no liburing headers: io_uring is simply not offered

namespace corio {
std::unique_ptr<IoBackend> make_io_uring_backend() { return nullptr; }
namespace detail {
ProvidedBufferStats provided_buffer_stats(const IoBackend&) noexcept { return {}; }
}  // namespace detail
}  // namespace corio

#endif
