// The io_uring backend: operations are prepared as submission entries and sent to the kernel
// in one batch per loop tick (io_uring_submit_and_wait_timeout); completions come back with
// the IoOperation as user data. Cancellation is an ASYNC_CANCEL entry: the operation still
// completes, with -ECANCELED or its real result, so its buffer stays valid until then.
#include "corio/backend.hpp"

#if defined(CORIO_HAVE_IO_URING)
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <system_error>
#include <vector>

namespace corio {

namespace {

enum : std::uint8_t { Idle = 0, InFlight = 1 };

struct MsgScratch {
    msghdr msg;
    iovec iov;
};
static_assert(sizeof(MsgScratch) <= sizeof(IoOperation::scratch_));

// Cancel-by-fd (used when an fd is about to be closed) needs 5.19.
bool kernel_is_recent_enough() {
    utsname u{};
    if (::uname(&u) != 0) return false;
    int major = 0, minor = 0;
    if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
    return major > 5 || (major == 5 && minor >= 19);
}

// Markers for completions that belong to no operation.
char g_cancel_marker;
char g_wake_marker;

class IoUringBackend final : public IoBackend {
public:
    IoUringBackend() {
        io_uring_params params{};
        params.flags = IORING_SETUP_COOP_TASKRUN;
        int rc = io_uring_queue_init_params(1024, &ring_, &params);
        if (rc == -EINVAL) {
            params = io_uring_params{};
            rc = io_uring_queue_init_params(1024, &ring_, &params);
        }
        if (rc < 0) throw std::system_error(-rc, std::generic_category(), "io_uring_queue_init");
        wakefd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wakefd_ < 0) {
            int e = errno;
            io_uring_queue_exit(&ring_);
            throw std::system_error(e, std::generic_category(), "eventfd");
        }
    }
    ~IoUringBackend() override {
        io_uring_queue_exit(&ring_);
        ::close(wakefd_);
    }

    const char* name() const noexcept override { return "io_uring"; }
    std::size_t pending() const noexcept override { return pending_; }

    void submit(IoOperation& op) override {
        if (op.where_ != Idle) throw std::logic_error("corio: I/O operation submitted twice");
        io_uring_sqe* sqe = next_sqe();
        using K = IoOperation::Kind;
        switch (op.kind) {
            case K::Read: io_uring_prep_read(sqe, op.fd, op.buffer, unsigned(op.length), ~0ULL); break;
            case K::Write: io_uring_prep_write(sqe, op.fd, op.buffer, unsigned(op.length), ~0ULL); break;
            case K::Recv: io_uring_prep_recv(sqe, op.fd, op.buffer, op.length, op.flags); break;
            case K::Send: io_uring_prep_send(sqe, op.fd, op.buffer, op.length, op.flags | MSG_NOSIGNAL); break;
            case K::Accept:
                io_uring_prep_accept(sqe, op.fd, op.address, op.address ? reinterpret_cast<socklen_t*>(&op.address_length) : nullptr,
                                     SOCK_NONBLOCK | SOCK_CLOEXEC);
                break;
            case K::Connect: io_uring_prep_connect(sqe, op.fd, op.address, op.address_length); break;
            case K::RecvFrom:
            case K::SendTo: {
                auto* m = new (op.scratch_) MsgScratch{};
                m->iov.iov_base = op.buffer;
                m->iov.iov_len = op.length;
                m->msg.msg_name = op.address;
                m->msg.msg_namelen = op.address_length;
                m->msg.msg_iov = &m->iov;
                m->msg.msg_iovlen = 1;
                if (op.kind == K::RecvFrom)
                    io_uring_prep_recvmsg(sqe, op.fd, &m->msg, unsigned(op.flags));
                else
                    io_uring_prep_sendmsg(sqe, op.fd, &m->msg, unsigned(op.flags | MSG_NOSIGNAL));
                break;
            }
            case K::PollIn: io_uring_prep_poll_add(sqe, op.fd, POLLIN); break;
            case K::PollOut: io_uring_prep_poll_add(sqe, op.fd, POLLOUT); break;
            case K::ReadV:
                io_uring_prep_readv(sqe, op.fd, static_cast<const iovec*>(op.buffer), unsigned(op.length), ~0ULL);
                break;
        }
        io_uring_sqe_set_data(sqe, &op);
        op.where_ = InFlight;
        ++pending_;
    }

    // Nothing to learn from it: the kernel waits for readiness by itself.
    long attempt_now(IoOperation& op) noexcept override { return detail::transfer_now(op); }
    bool readiness_based() const noexcept override { return false; }

    void cancel(IoOperation& op) override {
        if (op.where_ != InFlight) return;
        io_uring_sqe* sqe = next_sqe();
        io_uring_prep_cancel(sqe, &op, 0);
        io_uring_sqe_set_data(sqe, &g_cancel_marker);
    }

    void release_fd(int fd) noexcept override {
        if (pending_ == 0) return;
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (!sqe) {
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
            if (!sqe) return;
        }
        io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data(sqe, &g_cancel_marker);
        // The fd is closed right after this: the cancellation must reach the kernel first.
        io_uring_submit(&ring_);
    }

    void cancel_all() noexcept override {
        for (int round = 0; round < 100 && pending_ > 0; ++round) {
            if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) {
                io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
                io_uring_sqe_set_data(sqe, &g_cancel_marker);
            }
            try {
                poll(std::chrono::milliseconds(10));
            } catch (...) {
                break;
            }
        }
    }

    std::size_t poll(std::chrono::nanoseconds timeout) override {
        if (!wake_armed_) arm_wakeup();
        int rc;
        if (timeout.count() == 0) {
            rc = io_uring_submit(&ring_);
        } else {
            io_uring_cqe* cqe = nullptr;
            __kernel_timespec ts{};
            __kernel_timespec* tsp = nullptr;
            if (timeout.count() > 0) {
                ts.tv_sec = timeout.count() / 1'000'000'000;
                ts.tv_nsec = timeout.count() % 1'000'000'000;
                tsp = &ts;
            }
            rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
        }
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
            throw std::system_error(-rc, std::generic_category(), "io_uring_submit");
        // Collect first, then call back: a callback may submit (and so touch the rings).
        done_.clear();
        unsigned head;
        unsigned seen = 0;
        io_uring_cqe* cqe;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            void* data = io_uring_cqe_get_data(cqe);
            if (data == &g_cancel_marker || data == nullptr) continue;
            if (data == &g_wake_marker) {
                wake_armed_ = false;
                continue;
            }
            auto* op = static_cast<IoOperation*>(data);
            long res = cqe->res;
            using K = IoOperation::Kind;
            if ((op->kind == K::PollIn || op->kind == K::PollOut) && res > 0) res = 0;
            if (op->kind == K::RecvFrom && res >= 0)
                op->address_length = reinterpret_cast<MsgScratch*>(op->scratch_)->msg.msg_namelen;
            op->result_ = res;
            done_.push_back(op);
        }
        io_uring_cq_advance(&ring_, seen);
        for (IoOperation* op : done_) {
            op->where_ = Idle;
            --pending_;
            op->complete(op, op->result_);
        }
        return done_.size();
    }

    void wakeup() noexcept override {
        std::uint64_t one = 1;
        ssize_t r;
        do {
            r = ::write(wakefd_, &one, sizeof one);
        } while (r < 0 && errno == EINTR);
    }

private:
    io_uring_sqe* next_sqe() {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (!sqe) {
            io_uring_submit(&ring_);  // the submission ring is full: hand the batch over now
            sqe = io_uring_get_sqe(&ring_);
            if (!sqe) throw std::system_error(EBUSY, std::generic_category(), "io_uring_get_sqe");
        }
        return sqe;
    }

    void arm_wakeup() {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (!sqe) return;  // try again next tick
        io_uring_prep_read(sqe, wakefd_, &wake_value_, sizeof wake_value_, ~0ULL);
        io_uring_sqe_set_data(sqe, &g_wake_marker);
        wake_armed_ = true;
    }

    io_uring ring_{};
    int wakefd_ = -1;
    std::uint64_t wake_value_ = 0;
    bool wake_armed_ = false;
    std::size_t pending_ = 0;
    std::vector<IoOperation*> done_;
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

}  // namespace corio

#else  // no liburing headers: io_uring is simply not offered

namespace corio {
std::unique_ptr<IoBackend> make_io_uring_backend() { return nullptr; }
}  // namespace corio

#endif
