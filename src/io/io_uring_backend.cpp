// The io_uring backend: operations are prepared as submission entries and sent to the kernel
// in one batch per loop tick (io_uring_submit_and_wait_timeout); completions come back with
// the IoOperation as user data. Cancellation is an ASYNC_CANCEL entry: the operation still
// completes, with -ECANCELED or its real result, so its buffer stays valid until then. One
// operation of a direction per fd is in the kernel at a time, the others wait in line (the
// kernel serves those waiting on one file newest first).
//
// With provided buffers on, stream sockets are read through multishot receives instead
// (uring_multishot.cpp). Pipes, files, datagram and listening sockets keep one-shot entries.
#include "corio/backend.hpp"

#if defined(CORIO_HAVE_IO_URING)
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "uring_backend.hpp"
#include "uring_prep.hpp"

namespace corio {

namespace {

// Cancel-by-fd (used when an fd is about to be closed) needs 5.19.
bool kernel_is_recent_enough() {
    utsname u{};
    if (::uname(&u) != 0) return false;
    int major = 0, minor = 0;
    if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
    return major > 5 || (major == 5 && minor >= 19);
}

// Multishot receives are off unless CORIO_IO_URING_BUFFERS asks for them ("on": 256 buffers of
// 16 KiB, 4 MiB of address space touched as used; or "COUNTxSIZE"): on the echo benchmark they
// save no syscall (one io_uring_enter already serves ~50 requests; armed receives make poll()
// enter more often, not less) and the copy out of the ring costs 1-2 % at 1 and 10 KiB
// (docs/reference/backend.md has the numbers).
constexpr unsigned kDefaultBuffers = 256;
constexpr unsigned kDefaultBufferSize = 16 * 1024;
// CORIO_IO_URING_BUFFERS: how many provided buffers, of what size (0: none). A value that asks
// for something the kernel can never give is refused, as a bad CORIO_BACKEND is: silently
// running without what was asked for would make a measurement lie.
std::pair<unsigned, unsigned> buffers_wanted() {
    const char* env = std::getenv("CORIO_IO_URING_BUFFERS");
    if (!env || !*env || std::strcmp(env, "0") == 0 || std::strcmp(env, "off") == 0) return {0, 0};
    if (std::strcmp(env, "on") == 0) return {kDefaultBuffers, kDefaultBufferSize};
    const std::string_view text(env);
    unsigned count = 0, size = 0;
    const auto x = text.find('x');
    bool valid = x != std::string_view::npos;
    if (valid) {
        auto [c_end, c_err] = std::from_chars(text.data(), text.data() + x, count);
        auto [s_end, s_err] = std::from_chars(text.data() + x + 1, text.data() + text.size(), size);
        valid = c_err == std::errc{} && c_end == text.data() + x && s_err == std::errc{} &&
                s_end == text.data() + text.size() && count != 0 && count <= 32768 && (count & (count - 1)) == 0 &&
                size != 0 && size <= (1u << 20);
    }
    if (!valid)
        throw std::invalid_argument("CORIO_IO_URING_BUFFERS must be 'on', 'off', '0' or COUNTxSIZE (COUNT a power of two "
                                    "up to 32768, SIZE 1 to 1048576 bytes, e.g. 256x16384), not '" +
                                    std::string(text) + "'");
    return {count, size};
}

}  // namespace

namespace detail::uring {

Backend::Backend(std::pair<unsigned, unsigned> buffers) : ring_(buffers.first, buffers.second) {
    if (ring_.buffers().ready()) max_queued_buffers_ = std::max<std::size_t>(2, kMaxQueuedBytes / ring_.buffers().size());
    wakefd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakefd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

Backend::~Backend() { ::close(wakefd_); }

void Backend::submit(IoOperation& op) {
    if (op.where_ != Idle) throw std::logic_error("corio: I/O operation submitted twice");
    op.progress_ = 0;
    if (op.fd < 0) {  // never reaches the kernel (nor the per-fd tables); as epoll answers it
        ++pending_;
        make_ready(op, -EBADF);
        return;
    }
    if (submit_to_multishot(op)) return;
    try {
        start_one_shot(op);
    } catch (...) {
        // Not submitted: a read it counted must not keep the socket's multishot off for good.
        if ((op.progress_ & kCountedRead)) uncount_read(op);
        throw;
    }
    ++pending_;
}

long Backend::attempt_now(IoOperation& op) noexcept {
    long result;
    if (attempt_from_queue(op, result)) return result;
    return detail::transfer_now(op);
}

void Backend::cancel(IoOperation& op) {
    if (op.where_ == Waiting || op.where_ == Queued) {
        FdState& s = fds_[std::size_t(op.fd)];
        (op.where_ == Waiting ? s.waiters : s.queued[lane(op.kind)]).remove(&op);
        if ((op.progress_ & kCountedRead)) uncount_read(op);
        make_ready(op, -ECANCELED);
        return;
    }
    if (op.where_ != InFlight || (op.progress_ & kCancelLater)) return;
    own();
    io_uring_sqe* sqe = ring_.try_sqe();
    if (!sqe) {
        unlist(op);  // an orphan moves to the other list: its fd's cancel may not have gone out
        // No room even after a submit (the kernel refuses more while its completion ring
        // overflows): asked at the next poll(), once the completions are reaped.
        op.progress_ |= kCancelLater;
        cancel_later_.push(&op);
        return;
    }
    io_uring_prep_cancel(sqe, &op, 0);
    io_uring_sqe_set_data(sqe, &g_cancel_marker);
}

void Backend::release_fd(int fd) noexcept {
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

void Backend::cancel_all() noexcept {
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
    // Up to 10 s by the clock, in slices of 10 ms, each with a cancel of its own (a
    // completion's callback may have submitted more). A slice polls until it ends, not once:
    // poll() returns at the first completion, and the cancel's own and the wake-up read's (it
    // cancels that too) come at once, while the operations of a thread that has exited
    // complete later, through the kernel's fallback work (over a second on a loaded machine;
    // the wait ends as soon as nothing is pending).
    using Clock = std::chrono::steady_clock;
    const Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
    for (Clock::time_point now = Clock::now(); pending_ > 0 && now < deadline;) {
        // The ring first (an idle one another thread had is taken over): an entry prepared in
        // a ring this thread may not submit to would make it look busy, and own() refuse it.
        try {
            own();
        } catch (...) {
            // Not ours, and not idle: what was completed already (by forget()) is delivered.
            deliver_ready();
            return;
        }
        if (io_uring_sqe* sqe = cancel_sent ? nullptr : io_uring_get_sqe(ring_.get())) {
            io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data(sqe, &g_cancel_marker);
        }
        cancel_sent = false;
        const Clock::time_point slice_end = std::min(deadline, now + std::chrono::milliseconds(10));
        do {
            try {
                poll(std::chrono::duration_cast<std::chrono::nanoseconds>(slice_end - now));
            } catch (...) {
                return;
            }
            now = Clock::now();
        } while (pending_ > 0 && now < slice_end);
    }
}

std::size_t Backend::poll(std::chrono::nanoseconds timeout) {
    own();
    if (!wake_armed_) arm_wakeup();
    while (IoOperation* op = cancel_later_.head) {
        io_uring_sqe* sqe = ring_.try_sqe();
        if (!sqe) break;  // still full: next time
        unlist(*op);
        // Its fd released meanwhile: still in the kernel, it stays listed until it completes,
        // so that a dropped ring still completes it.
        if (!holds(*op)) {
            op->progress_ |= kOrphan;
            orphans_.push(op);
        }
        io_uring_prep_cancel(sqe, op, 0);
        io_uring_sqe_set_data(sqe, &g_cancel_marker);
    }
    // Operations finished at submit time are delivered now: no waiting for the kernel.
    if (ready_head_) timeout = std::chrono::nanoseconds(0);
    // Without the wake-up read, another thread's wake-up (call_soon_threadsafe, a thread call's
    // result) would not end the wait: wait a little at a time until it can be armed.
    constexpr std::chrono::nanoseconds kUnarmedWait = std::chrono::milliseconds(1);
    if (!wake_armed_ && (timeout.count() < 0 || timeout > kUnarmedWait)) timeout = kUnarmedWait;
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
            op->address_length = received_name_length(*op);
        if ((op->progress_ & kCountedRead)) uncount_read(*op);
        unlist(*op);
        --in_kernel_;
        start_next_after(*op);
        make_ready(*op, res);
    }
    io_uring_cq_advance(ring_.get(), seen);
    // Only now (a failure must not leave completions unadvanced, to be seen twice).
    while (IoOperation* next = restart_.pop()) start_or_fail(*next);
    return deliver_ready();
}

std::size_t Backend::deliver_ready() noexcept {
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

void Backend::wakeup() noexcept {
    std::uint64_t one = 1;
    ssize_t r;
    do {
        r = ::write(wakefd_, &one, sizeof one);
    } while (r < 0 && errno == EINTR);
}

void Backend::uncount_read(IoOperation& op) {
    op.progress_ &= std::uint8_t(~kCountedRead);
    std::uint32_t gen;
    std::memcpy(&gen, op.scratch_, sizeof gen);
    if (std::size_t(op.fd) < fds_.size() && fds_[std::size_t(op.fd)].gen == gen) --fds_[std::size_t(op.fd)].counted_reads;
}

// The fd is about to be closed (or the loop is): its waiters complete with -ECANCELED, its
// buffers go back, and a multishot still in the kernel becomes stale (new generation).
void Backend::forget(FdState& s) noexcept {
    for (detail::OpQueue* q : {&s.waiters, &s.queued[0], &s.queued[1], &s.queued[2]}) {
        while (IoOperation* op = q->pop()) make_ready(*op, -ECANCELED);
    }
    // What is still in the kernel completes as cancelled, or stale: it starts nothing. It is
    // kept on the orphans' list until then, so that a ring dropped first still completes it.
    // One whose own cancel is still to go stays on that list instead: the fd's cancel may not
    // have found room either (it is cancelled by address, which outlives the fd).
    for (IoOperation*& op : s.in_flight) {
        if (!op) continue;
        if (!(op->progress_ & kCancelLater)) {
            op->progress_ |= kOrphan;
            orphans_.push(op);
        }
        op = nullptr;
    }
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
void Backend::start_one_shot(IoOperation& op) {
    IoOperation** current = nullptr;
    if (op.fd >= 0) {
        if (std::size_t(op.fd) >= fds_.size()) fds_.resize(std::size_t(op.fd) + 64);
        FdState& s = fds_[std::size_t(op.fd)];
        current = &s.in_flight[lane(op.kind)];
        if (*current) {
            s.queued[lane(op.kind)].push(&op);
            op.where_ = Queued;
            return;
        }
    }
    io_uring_sqe* sqe = next_sqe();  // may throw: nothing is noted before it
    if (current) *current = &op;
    prepare_one_shot(*sqe, op);
    op.where_ = InFlight;
    ++in_kernel_;
}

// Starts an operation that waited its turn; one that cannot get an entry completes with the
// error, and the next in line gets its turn.
void Backend::start_or_fail(IoOperation& op) noexcept {
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
    if (IoOperation* next = s.queued[lane(op.kind)].pop()) restart_.push(next);
}

// `op` has completed: the next operation queued behind it goes to the kernel.
void Backend::start_next_after(IoOperation& op) {
    if (op.fd < 0 || std::size_t(op.fd) >= fds_.size()) return;
    FdState& s = fds_[std::size_t(op.fd)];
    IoOperation*& current = s.in_flight[lane(op.kind)];
    if (current != &op) return;  // its fd was released meanwhile
    current = nullptr;
    // Started once the completions are consumed (poll() does it).
    if (IoOperation* next = s.queued[lane(op.kind)].pop()) restart_.push(next);
}

// The loop closes on a thread that may not submit to the ring (its owner may even be gone):
// nothing can be cancelled through it, so it is replaced, and the operations it held in the
// kernel complete here, cancelled (a deferred ring runs none of them once dropped: their
// memory is not written to after this, however the loop then frees it).
void Backend::drop_the_kernels_operations() noexcept {
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
    const auto cancelled = [this](IoOperation& op) {
        if ((op.progress_ & kCountedRead)) uncount_read(op);
        unlist(op);
        make_ready(op, -ECANCELED);
    };
    for (FdState& s : fds_) {
        for (IoOperation*& op : s.in_flight) {
            if (op) cancelled(*std::exchange(op, nullptr));
        }
        s.armed = false;
    }
    while (IoOperation* op = orphans_.head) cancelled(*op);
    while (IoOperation* op = cancel_later_.head) cancelled(*op);  // released ones, their cancel still to go
    in_kernel_ = 0;
}

// A loop may run on one thread, then on another: the ring follows it while idle.
void Backend::own() {
    if (ring_.owned_here()) return;
    const bool idle = in_kernel_ == 0 && ring_.buffers().taken() == 0 && io_uring_sq_ready(ring_.get()) == 0 &&
                      std::none_of(fds_.begin(), fds_.end(), [](const FdState& f) { return f.armed; });
    if (ring_.take_over(idle)) wake_armed_ = false;  // its read went with the old ring; the eventfd keeps any wakeup
}

void Backend::arm_wakeup() {
    // A full queue is submitted to make room; still full (the completion ring overflows), the
    // poll below does not sleep without it.
    io_uring_sqe* sqe = ring_.try_sqe();
    if (!sqe) return;
    io_uring_prep_read(sqe, wakefd_, &wake_value_, sizeof wake_value_, ~0ULL);
    io_uring_sqe_set_data(sqe, &g_wake_marker);
    wake_armed_ = true;
}

}  // namespace detail::uring

std::unique_ptr<IoBackend> make_io_uring_backend() {
    if (!kernel_is_recent_enough()) return nullptr;
    try {
        return std::make_unique<detail::uring::Backend>(buffers_wanted());
    } catch (const std::system_error&) {
        return nullptr;  // ENOSYS, EPERM (seccomp in containers), ENOMEM: epoll it is
    }
}

namespace detail {
ProvidedBufferStats provided_buffer_stats(const IoBackend& backend) noexcept {
    if (const auto* b = dynamic_cast<const uring::Backend*>(&backend)) return b->stats();
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
