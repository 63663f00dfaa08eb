#include "uring_prep.hpp"

#if defined(CORIO_HAVE_IO_URING)
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <new>

namespace corio::detail::uring {

namespace {
// RecvFrom and SendTo need a msghdr that lives until the completion: the operation's scratch.
struct MsgScratch {
    msghdr msg;
    iovec iov;
};
static_assert(sizeof(MsgScratch) <= sizeof(IoOperation::scratch_));
// An entry's length is 32 bits: a 4 GiB send would become a 0-byte one, which a sendall loop
// retries for ever. Linux moves at most MAX_RW_COUNT (2 GiB - 4 KiB) a call anyway, and every
// caller handles a short transfer.
unsigned capped(std::size_t length) noexcept { return unsigned(std::min<std::size_t>(length, 0x7ffff000)); }
}  // namespace

void prepare_one_shot(io_uring_sqe& entry, IoOperation& op) noexcept {
    io_uring_sqe* sqe = &entry;
    using K = IoOperation::Kind;
    switch (op.kind) {
        case K::Read: io_uring_prep_read(sqe, op.fd, op.buffer, capped(op.length), ~0ULL); break;
        case K::Write: io_uring_prep_write(sqe, op.fd, op.buffer, capped(op.length), ~0ULL); break;
        case K::Recv: io_uring_prep_recv(sqe, op.fd, op.buffer, capped(op.length), op.flags); break;
        case K::Send: io_uring_prep_send(sqe, op.fd, op.buffer, capped(op.length), op.flags | MSG_NOSIGNAL); break;
        case K::Accept:
            io_uring_prep_accept(sqe, op.fd, op.address, op.address ? reinterpret_cast<socklen_t*>(&op.address_length) : nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
            break;
        case K::Connect: io_uring_prep_connect(sqe, op.fd, op.address, op.address_length); break;
        case K::RecvFrom:
        case K::SendTo: {
            auto* m = new (op.scratch_) MsgScratch{};
            m->iov.iov_base = op.buffer;
            m->iov.iov_len = capped(op.length);
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
        case K::ReadV: io_uring_prep_readv(sqe, op.fd, static_cast<const iovec*>(op.buffer), unsigned(op.length), ~0ULL); break;
    }
    io_uring_sqe_set_data(sqe, &op);
}

unsigned received_name_length(const IoOperation& op) noexcept {
    return reinterpret_cast<const MsgScratch*>(op.scratch_)->msg.msg_namelen;
}

}  // namespace corio::detail::uring

#endif
