// The epoll backend: readiness turned into completions.
//
// submit() tries the syscall at once; only when it would block is the operation queued on its
// fd, and the fd registered edge-triggered for both directions (once: later operations just
// join the queues). An event retries the queued operations in order until one would block
// again. Completions are never delivered inside submit(): they are collected and delivered
// from poll(), so a caller never sees its callback run inside its own call.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

#include "corio/backend.hpp"
#include "op_queue.hpp"

namespace corio {

namespace {

enum : std::uint8_t { Idle = 0, Queued = 1, Completed = 2 };

using detail::OpQueue;

using detail::reads;

// Bytes a transfer asked for (ReadV: the sum of its iovecs).
std::size_t requested(const IoOperation& op) noexcept {
    if (op.kind != IoOperation::Kind::ReadV) return op.length;
    std::size_t total = 0;
    const auto* iov = static_cast<const iovec*>(op.buffer);
    for (std::size_t i = 0; i < op.length; ++i) total += iov[i].iov_len;
    return total;
}

long errno_result(long r) noexcept { return r < 0 ? -long(errno) : r; }

// An attempt's EAGAIN that is its result rather than "wait for the next event".
constexpr long kFinalEagain = -(1L << 20);

// The syscall behind an operation, non-blocking; -EAGAIN when it would block.
long attempt(IoOperation& op, bool after_event) noexcept {
    using K = IoOperation::Kind;
    for (;;) {
        long r = 0;
        switch (op.kind) {
            case K::Read:
            case K::Write:
            case K::Recv:
            case K::Send:
            case K::ReadV: return detail::transfer_now(op);
            case K::Accept: {
                socklen_t len = op.address_length;
                r = errno_result(::accept4(op.fd, op.address, op.address ? &len : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
                op.address_length = len;
                break;
            }
            case K::Connect: {
                if (op.progress_ == 0) {
                    op.progress_ = 1;
                    r = errno_result(::connect(op.fd, op.address, op.address_length));
                    if (r == -EINPROGRESS) return -EAGAIN;
                    // A Unix socket says EAGAIN when the listener's backlog is full. That is final
                    // (io_uring reports it so): no event tells when to try again, and the socket,
                    // unconnected, polls writable at once, so waiting would report it connected.
                    if (r == -EAGAIN) return kFinalEagain;
                } else {
                    int err = 0;
                    socklen_t len = sizeof err;
                    if (::getsockopt(op.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -long(errno);
                    if (err == 0) {
                        // Writable without an error may still be "not yet" on a spurious wake.
                        pollfd p{op.fd, POLLOUT, 0};
                        if (::poll(&p, 1, 0) == 0) return -EAGAIN;
                    }
                    return -long(err);
                }
                break;
            }
            case K::RecvFrom: {
                socklen_t len = op.address_length;
                r = errno_result(::recvfrom(op.fd, op.buffer, op.length, op.flags, op.address, op.address ? &len : nullptr));
                op.address_length = len;
                break;
            }
            case K::SendTo:
                r = errno_result(::sendto(op.fd, op.buffer, op.length, op.flags | MSG_NOSIGNAL, op.address, op.address_length));
                break;
            case K::PollIn:
            case K::PollOut: {
                if (after_event) return 0;
                pollfd p{op.fd, short(op.kind == K::PollIn ? POLLIN : POLLOUT), 0};
                r = errno_result(::poll(&p, 1, 0));
                if (r == 0) return -EAGAIN;
                // A closed fd is no readiness: a caller that retries its syscall on "ready"
                // would spin (io_uring's poll answers -EBADF too).
                if (r > 0) r = (p.revents & POLLNVAL) ? -EBADF : 0;
                break;
            }
        }
        if (r == -EINTR) continue;
        if (r == -EWOULDBLOCK) return -EAGAIN;
        return r;
    }
}

class EpollBackend final : public IoBackend {
public:
    EpollBackend() {
        // Writing to a closed peer must be an EPIPE error, never a process-killing signal.
        ::signal(SIGPIPE, SIG_IGN);
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
        wakefd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wakefd_ < 0) {
            int e = errno;
            ::close(epfd_);
            throw std::system_error(e, std::generic_category(), "eventfd");
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = -1;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) < 0) {
            int e = errno;
            ::close(wakefd_);
            ::close(epfd_);
            throw std::system_error(e, std::generic_category(), "epoll_ctl(eventfd)");
        }
    }
    ~EpollBackend() override {
        ::close(wakefd_);
        ::close(epfd_);
    }

    const char* name() const noexcept override { return "epoll"; }
    std::size_t pending() const noexcept override { return pending_; }

    void submit(IoOperation& op) override {
        if (op.where_ != Idle) throw std::logic_error("corio: I/O operation submitted twice");
        ++pending_;
        if (op.fd < 0) {  // as io_uring answers it: a completion with the error
            finish(op, -EBADF);
            return;
        }
        FdState& st = state_of(op.fd);
        OpQueue& queue = reads(op.kind) ? st.readers : st.writers;
        // Try at once unless the fd is known not to be ready (an attempt said EAGAIN, or a read
        // came back short, and no event has come since) or others are queued ahead: then the
        // next edge-triggered event does it, and an echo's read costs no wasted syscall.
        bool known_idle = st.registered && !(reads(op.kind) ? st.read_ready : st.write_ready);
        if (queue.empty() && !known_idle) {
            long r = attempt(op, false);
            note(st, op, r);
            if (r != -EAGAIN) {
                finish(op, r);
                return;
            }
        }
        if (!st.registered) {
            if (long r = watch(op.fd, EPOLL_CTL_ADD); r < 0) {
                finish(op, r);
                return;
            }
            st.registered = true;
        }
        queue.push(&op);
        op.where_ = Queued;
    }

    long attempt_now(IoOperation& op) noexcept override {
        using K = IoOperation::Kind;
        if (op.kind != K::Read && op.kind != K::Write && op.kind != K::Recv && op.kind != K::Send && op.kind != K::ReadV)
            return -EOPNOTSUPP;
        FdState* st = op.fd >= 0 && std::size_t(op.fd) < fds_.size() ? &fds_[std::size_t(op.fd)] : nullptr;
        if (!st || !st->registered) return detail::transfer_now(op);  // nothing known, nothing to note
        bool reading = reads(op.kind);
        // Drained (or full), and no event since: the edge will tell when to try again.
        if (!(reading ? st->read_ready || st->read_closed : st->write_ready)) return -EAGAIN;
        long r = detail::transfer_now(op);
        note(*st, op, r);
        return r;
    }

    bool readiness_based() const noexcept override { return true; }

    void cancel(IoOperation& op) override {
        if (op.where_ != Queued) return;
        FdState& st = fds_[std::size_t(op.fd)];
        (reads(op.kind) ? st.readers : st.writers).remove(&op);
        op.where_ = Idle;
        finish(op, -ECANCELED);
    }

    void release_fd(int fd) noexcept override {
        if (fd < 0 || std::size_t(fd) >= fds_.size()) return;
        FdState& st = fds_[std::size_t(fd)];
        for (OpQueue* q : {&st.readers, &st.writers}) {
            while (IoOperation* op = q->head) {
                q->remove(op);
                op->where_ = Idle;
                finish(*op, -ECANCELED);
            }
        }
        if (st.registered) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        st.registered = false;
        st.read_ready = st.write_ready = true;
        st.read_closed = false;
        st.message_socket = 0;
    }

    void cancel_all() noexcept override {
        // A completion delivered here (one that had its result before the cancel) may submit the
        // operation's next step: cancelled in the next round, or it would be left queued.
        for (int round = 0; round < 100; ++round) {
            bool cancelled = false;
            for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
                FdState& st = fds_[fd];
                for (OpQueue* q : {&st.readers, &st.writers}) {
                    while (IoOperation* op = q->head) {
                        q->remove(op);
                        op->where_ = Idle;
                        finish(*op, -ECANCELED);
                        cancelled = true;
                    }
                }
            }
            if (!cancelled && completed_.empty()) return;
            while (!completed_.empty()) {
                try {
                    poll(std::chrono::nanoseconds(0));
                } catch (...) {
                    return;
                }
            }
        }
    }

    std::size_t poll(std::chrono::nanoseconds timeout) override {
        int ms;
        if (!completed_.empty()) {
            ms = 0;
        } else if (timeout.count() < 0) {
            ms = -1;
        } else {
            // Round up: waking before a timer is due only costs another trip round the loop.
            auto rounded = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
            ms = rounded > 1'000'000 ? 1'000'000 : int(rounded);
        }
        epoll_event events[128];
        int n = ::epoll_wait(epfd_, events, 128, ms);
        if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "epoll_wait");
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd < 0) {
                std::uint64_t value;
                while (::read(wakefd_, &value, sizeof value) > 0) {
                }
                continue;
            }
            if (std::size_t(fd) >= fds_.size()) continue;
            FdState& st = fds_[std::size_t(fd)];
            std::uint32_t ev = events[i].events;
            if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
                st.read_ready = true;
                if (ev & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) st.read_closed = true;
                retry(st, st.readers);
            }
            if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                st.write_ready = true;
                retry(st, st.writers);
            }
        }
        // Deliver what completed so far; what the callbacks submit waits for the next poll.
        OpQueue ready = completed_;
        completed_ = OpQueue{};
        std::size_t delivered = 0;
        while (IoOperation* op = ready.head) {
            ready.remove(op);
            op->where_ = Idle;
            --pending_;
            ++delivered;
            op->complete(op, op->result_);
        }
        return delivered;
    }

    void wakeup() noexcept override {
        std::uint64_t one = 1;
        ssize_t r;
        do {
            r = ::write(wakefd_, &one, sizeof one);
        } while (r < 0 && errno == EINTR);
    }

private:
    struct FdState {
        OpQueue readers;
        OpQueue writers;
        bool registered = false;
        bool read_ready = true;   // false: the last attempt would have blocked, no event since
        bool write_ready = true;
        bool read_closed = false;  // the peer hung up: reads never block again (sticky, as Tokio)
        // A datagram or seqpacket socket gives one message a read, however many are queued, so
        // a short read does not say it is drained. 0: not asked yet (SO_TYPE, once an fd).
        std::uint8_t message_socket = 0;  // 1: no (a stream, a pipe, a file), 2: yes
    };

    // Registers the fd (op: ADD or MOD), edge-triggered for both directions. A registration
    // that turns out stale (ADD: EEXIST, an fd closed and reopened behind our back while the
    // old file lives on elsewhere; MOD: ENOENT, the old file is gone) is replaced. Readiness
    // noted for the old file says nothing about this one: it is forgotten (the kernel reports
    // what is ready now on the new registration). 0, or -errno.
    long watch(int fd, int op) noexcept {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.fd = fd;
        if (::epoll_ctl(epfd_, op, fd, &ev) == 0) {
            // A new registration: what was cached about an earlier file of this number is void.
            if (op == EPOLL_CTL_ADD) fds_[std::size_t(fd)].message_socket = 0;
            return 0;
        }
        if (op == EPOLL_CTL_ADD && errno == EEXIST) {
            op = EPOLL_CTL_MOD;
        } else if (op == EPOLL_CTL_MOD && errno == ENOENT) {
            op = EPOLL_CTL_ADD;
        } else {
            return -long(errno);
        }
        if (::epoll_ctl(epfd_, op, fd, &ev) < 0) return -long(errno);
        FdState& st = fds_[std::size_t(fd)];
        st.read_ready = st.write_ready = true;
        st.read_closed = false;
        st.message_socket = 0;
        return 0;
    }

    // What an attempt says about the fd: EAGAIN, or a read or write that came back short, means
    // it is drained (or full) until the next edge.
    static void note(FdState& st, const IoOperation& op, long r) noexcept {
        using K = IoOperation::Kind;
        bool& ready = reads(op.kind) ? st.read_ready : st.write_ready;
        if (reads(op.kind) && st.read_closed) return;  // EOF (or the error) is always there to read
        if (r == -EAGAIN) {
            ready = false;
        } else if (r >= 0 &&
                   (op.kind == K::Recv || op.kind == K::Read || op.kind == K::Send || op.kind == K::Write ||
                    op.kind == K::ReadV) &&
                   std::size_t(r) < requested(op) && !(reads(op.kind) && is_message_socket(st, op.fd))) {
            ready = false;
        }
    }

    static bool is_message_socket(FdState& st, int fd) noexcept {
        if (st.message_socket == 0) {
            int type = 0;
            socklen_t len = sizeof type;
            bool message = ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type != SOCK_STREAM;
            st.message_socket = message ? 2 : 1;
        }
        return st.message_socket == 2;
    }

    FdState& state_of(int fd) {
        if (std::size_t(fd) >= fds_.size()) fds_.resize(std::size_t(fd) + 64);
        return fds_[std::size_t(fd)];
    }

    void finish(IoOperation& op, long result) noexcept {
        op.result_ = result == kFinalEagain ? -EAGAIN : result;
        op.where_ = Completed;
        completed_.push(&op);
    }

    void retry(FdState& st, OpQueue& q) noexcept {
        while (IoOperation* op = q.head) {
            long r = attempt(*op, true);
            note(st, *op, r);
            if (r == -EAGAIN) break;
            q.remove(op);
            finish(*op, r);
        }
    }

    int epfd_ = -1;
    int wakefd_ = -1;
    std::vector<FdState> fds_;
    OpQueue completed_;
    std::size_t pending_ = 0;
};

}  // namespace

std::unique_ptr<IoBackend> make_epoll_backend() { return std::make_unique<EpollBackend>(); }

}  // namespace corio
