// The io_uring backend's stream sockets, when provided buffers are on (CORIO_IO_URING_BUFFERS):
// a multishot receive, armed the first time a reader waits, stays armed and queues what arrives
// (uring_recv_queue.hpp), so that a read or a readiness wait that finds bytes queued completes
// without a syscall or a submission entry, and attempt_now() copies from the queue.
#include "uring_backend.hpp"

#if defined(CORIO_HAVE_IO_URING)
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace corio::detail::uring {

detail::ProvidedBufferStats Backend::stats() const noexcept {
    detail::ProvidedBufferStats s;
    s.available = ring_.buffers().ready();
    s.buffers = ring_.buffers().count();
    s.buffer_size = ring_.buffers().size();
    s.taken = ring_.buffers().taken();
    s.nobufs = nobufs_;
    for (const FdState& f : fds_) s.armed += f.armed ? 1 : 0;
    return s;
}

bool Backend::submit_to_multishot(IoOperation& op) {
    const bool poll = op.kind == IoOperation::Kind::PollIn;
    if (!ring_.buffers().ready() || !(is_read_kind(op.kind) || poll)) return false;
    FdState* s = stream_state(op.fd);
    if (!s) return false;
    if (s->queue.readable() && s->waiters.empty()) {
        finish_now(*s, op);
        ++pending_;
        return true;
    }
    // Only for a reader that reads all it is given: a raw socket's may be released to other
    // code, and the bytes the ring took from it would be lost.
    if (!s->armed && s->counted_reads == 0 && s->waiters.empty() && !poll && op.may_read_ahead) arm(op.fd, *s);
    if (s->armed) {
        // A readiness wait is how the streams wait while messages are big: they read them
        // with one readv straight from the socket (the ring's buffers would cost a copy more,
        // 20 % at 100 KiB), so the multishot stops. First: it may throw (a ring another thread
        // owns), and then the operation must not be held.
        if (poll) stop(op.fd, *s);
        op.where_ = Waiting;
        s->waiters.push(&op);
        ++pending_;
        return true;
    }
    if (!poll) {
        // No multishot (the ring ran dry, or a one-shot read is still out).
        op.progress_ |= kCountedRead;
        std::memcpy(op.scratch_, &s->gen, sizeof s->gen);
        ++s->counted_reads;
    }
    return false;
}

bool Backend::attempt_from_queue(IoOperation& op, long& result) noexcept {
    if (!is_read_kind(op.kind) || op.fd < 0 || std::size_t(op.fd) >= fds_.size()) return false;
    FdState& s = fds_[std::size_t(op.fd)];
    if (s.type != Stream) return false;
    if (s.queue.readable()) {
        result = s.queue.take(op, ring_.buffers());
        return true;
    }
    // Whatever arrives goes to the multishot's buffers: a syscall would only find the socket
    // empty (or, worse, take bytes out of order).
    if (!s.armed) return false;
    result = -EAGAIN;
    return true;
}

// The state of `fd` when it is a connected stream socket, checked once per fd (until
// release_fd); nullptr otherwise.
Backend::FdState* Backend::stream_state(int fd) {
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

void Backend::arm(int fd, FdState& s) {
    // After ENOBUFS, wait until half the ring is back: re-arming into an empty ring would only
    // fail again.
    if (s.starved && ring_.buffers().taken() > ring_.buffers().count() / 2) return;
    // No entry (the completion ring overflows): one-shot entries meanwhile. Not thrown: poll()
    // arms from its completion loop.
    own();
    io_uring_sqe* sqe = ring_.try_sqe();
    if (!sqe) return;
    io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BufferRing::kGroup;
    io_uring_sqe_set_data64(sqe, tag_of(fd, s.gen));
    s.armed = true;
    s.cancel_sent = false;
    s.starved = false;
}

// Cancels the fd's multishot receive; it ends with a last completion, -ECANCELED.
void Backend::stop(int fd, FdState& s) {
    if (!s.armed || s.cancel_sent) return;
    // No entry: the receive goes on, and is stopped at a later call (from poll()'s completion
    // loop too, which must not throw).
    own();
    io_uring_sqe* sqe = ring_.try_sqe();
    if (!sqe) return;
    io_uring_prep_cancel64(sqe, tag_of(fd, s.gen), 0);
    io_uring_sqe_set_data(sqe, &g_cancel_marker);
    s.cancel_sent = true;
}

void Backend::on_recv(std::uint64_t tag, int res, unsigned flags) {
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
        if (s.type == Stream && s.counted_reads == 0 && s.waiters.head->kind != IoOperation::Kind::PollIn &&
            s.waiters.head->may_read_ahead)
            arm(fd, s);
        if (!s.armed) {
            // Nothing will come through the ring for them: one-shot entries, in order. Taken
            // off the list first: a read after a readiness wait arms the receive again, and
            // joins the list it would otherwise be taken from for ever.
            detail::OpQueue again = std::exchange(s.waiters, detail::OpQueue{});
            while (IoOperation* op = again.pop()) {
                --pending_;
                op->where_ = Idle;
                // One that cannot get an entry completes with the error (as start_or_fail()):
                // thrown, it and those after it would be lost.
                long error;
                try {
                    submit(*op);
                    continue;
                } catch (const std::system_error& e) {
                    error = -long(e.code().value());
                } catch (...) {
                    error = -EIO;
                }
                ++pending_;
                make_ready(*op, error);
            }
        }
    }
}

// Completes waiters in order while the queue can serve them (a readiness wait does not
// consume, so every one waiting completes).
void Backend::serve_waiters(FdState& s) {
    while (!s.waiters.empty() && s.queue.readable()) {
        IoOperation& op = *s.waiters.pop();
        finish_now(s, op);
    }
}

void Backend::finish_now(FdState& s, IoOperation& op) {
    make_ready(op, op.kind == IoOperation::Kind::PollIn ? 0 : s.queue.take(op, ring_.buffers()));
}

}  // namespace corio::detail::uring

#endif
