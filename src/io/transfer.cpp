// The non-blocking syscall behind a data operation, shared by the backends (epoll makes it from
// poll() and attempt_now(); io_uring only from attempt_now(), for the streams' direct reads).
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "corio/backend.hpp"

namespace corio {

namespace {
long errno_result(long r) noexcept { return r < 0 ? -long(errno) : r; }
}  // namespace

namespace detail {
long transfer_now(IoOperation& op) noexcept {
    using K = IoOperation::Kind;
    for (;;) {
        long r;
        switch (op.kind) {
            case K::Read: r = errno_result(::read(op.fd, op.buffer, op.length)); break;
            case K::Write: r = errno_result(::write(op.fd, op.buffer, op.length)); break;
            case K::Recv: r = errno_result(::recv(op.fd, op.buffer, op.length, op.flags)); break;
            case K::Send: r = errno_result(::send(op.fd, op.buffer, op.length, op.flags | MSG_NOSIGNAL)); break;
            case K::SendTo:
                r = errno_result(::sendto(op.fd, op.buffer, op.length, op.flags | MSG_NOSIGNAL, op.address, op.address_length));
                break;
            case K::ReadV: r = errno_result(::readv(op.fd, static_cast<const iovec*>(op.buffer), int(op.length))); break;
            default: return -EOPNOTSUPP;
        }
        if (r == -EINTR) continue;
        if (r == -EWOULDBLOCK) return -EAGAIN;
        return r;
    }
}
}  // namespace detail

}  // namespace corio
