// StreamTransport: reads (direct, vectored with a spill area, or through the backend), writes
// (direct, held for the next one, or flushed through the backend), drain and half-close;
// stream_close.cpp has the close.
#include "stream_transport.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "corio/detail/byte_buffer.hpp"
#include "corio/detail/task_base.hpp"
#include "corio/loop.hpp"
#include "corio/socket.hpp"

namespace corio {
namespace detail {

namespace {
// A write is kept back (copied) to leave with the next one only while it is small: a syscall
// costs less than copying a bigger one (W4 100 KiB, whose 64 KiB half was held: +8-13 % req/s
// with this limit; 10 KiB unchanged).
constexpr std::size_t kMaxHeldWrite = 16 * 1024;

long direct_write(bool is_socket, int fd, iovec* iov, int count) noexcept {
    for (;;) {
        ssize_t r;
        if (count == 1) {  // the plain calls cost less than their vectored forms
            r = is_socket ? ::send(fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL) : ::write(fd, iov->iov_base, iov->iov_len);
        } else {
            msghdr msg{};
            msg.msg_iov = iov;
            msg.msg_iovlen = std::size_t(count);
            r = is_socket ? ::sendmsg(fd, &msg, MSG_NOSIGNAL) : ::writev(fd, iov, count);
        }
        if (r >= 0) return long(r);
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -long(errno);
    }
}

std::exception_ptr os_error(long negative_errno, const char* what) {
    return std::make_exception_ptr(std::system_error(int(-negative_errno), std::generic_category(), what));
}

struct LoopTokenService final : EventLoop::Service {
    explicit LoopTokenService(std::shared_ptr<LoopToken> t) : token(std::move(t)) {}
    ~LoopTokenService() override { token->open = false; }
    std::shared_ptr<LoopToken> token;
};
}  // namespace

// One area serves every connection: it is never handed to a backend, which could fill it for
// several reads before they are copied.
char* spill_area() {
    thread_local std::unique_ptr<char[]> area;
    if (!area) area.reset(new char[kSpill]);
    return area.get();
}

std::shared_ptr<LoopToken> running_loop_token() {
    EventLoop& loop = get_running_loop();
    // A thread runs few loops: the open ones' tokens, looked up by address (closed ones go).
    thread_local std::vector<std::shared_ptr<LoopToken>> tokens;
    std::erase_if(tokens, [](const std::shared_ptr<LoopToken>& t) { return !t->open; });
    for (const auto& t : tokens)
        if (t->loop == &loop) return t;
    auto token = std::make_shared<LoopToken>();
    token->loop = &loop;
    loop.add_service(std::make_unique<LoopTokenService>(token));
    tokens.push_back(token);
    return token;
}

void StreamTransport::throw_wrong_loop() const {
    if (!token_->open)
        throw std::logic_error("corio: this stream's event loop is closed (a stream belongs to the loop it was made on)");
    throw std::logic_error("corio: this stream belongs to another event loop than the running one");
}

void StreamTransport::note_read_end(long r) noexcept {
    if (r < 0 && r != -ECANCELED && !read_error_is_own_) {
        // A reset peer: the kernel gives ECONNRESET to the first call and EPIPE to the writes
        // after it, and the backend may complete our write before this read. The read's own
        // error replaces the write's stand-in, so reader and drain() say ECONNRESET, as asyncio's
        // reader reports it.
        const bool lost_already = bool(read_error_);
        read_error_ = os_error(r, "read");
        read_error_is_own_ = true;
        if (!lost_already) connection_lost(read_error_);
    }
    eof_ = true;
}

// The connection is gone (a reset, a broken pipe), as asyncio's _force_close has it: a reader
// sees the error rather than an end of stream (once a write has taken the kernel's pending reset,
// the reads would find only an EOF), what was not sent is dropped, the fd closes, and
// wait_closed() returns. It returns normally: the read or drain that met the error raised it
// (asyncio raises it once more there). An end of stream already seen stays one.
void StreamTransport::connection_lost(std::exception_ptr error) noexcept {
    if (!read_error_ && !eof_) read_error_ = error;
    if (!write_error_) write_error_ = error;
    closing_ = true;
    held_ = false;
    wake_all(drain_waiters_);
    if (write_in_flight_) return;  // the backend holds sending_: the write's completion closes
    sending_ = ByteBuffer{};
    pending_ = ByteBuffer{};
    close_fd();
}

long StreamTransport::read_now(char* data, std::size_t size, bool into_input) {
    if (!big_reads_) {
        // Small messages: a short read says "drained" already, and the plain call costs less.
        IoOperation op;
        op.kind = is_socket_ ? IoOperation::Kind::Recv : IoOperation::Kind::Read;
        op.fd = fd_;
        op.buffer = data;
        op.length = size;
        long r = loop_->backend().attempt_now(op);
        if (r > 0) {
            try_direct_read_ = std::size_t(r) == size;
            big_reads_ = std::size_t(r) >= size / 2;
            if (into_input) input_.commit(std::size_t(r));
        }
        return r;
    }
    // Into the buffer, at most kSpill bytes (beyond `data`; fill: `data` included): into its
    // free room first (no copy), then the spill area. So one read never makes the buffer grow
    // by more than kSpill.
    std::size_t room = into_input ? 0 : std::min(input_.room(), kSpill);
    std::size_t spilled = kSpill - (into_input ? std::min(size, kSpill) : room);
    iovec iov[3];
    int n = 0;
    iov[n++] = {data, size};
    if (room > 0) iov[n++] = {input_.tail(), room};
    char* spill = spill_area();
    if (spilled > 0) iov[n++] = {spill, spilled};
    IoOperation op;
    op.kind = IoOperation::Kind::ReadV;
    op.fd = fd_;
    op.buffer = iov;
    op.length = std::size_t(n);
    long r = loop_->backend().attempt_now(op);
    if (r <= 0) return r;
    std::size_t got = std::size_t(r);
    // Worth trying again at once only when every byte asked for came (more may be waiting).
    try_direct_read_ = got == size + room + spilled;
    big_reads_ = got >= size / 2;
    if (into_input) input_.commit(std::min(got, size));
    if (got <= size) return r;
    got -= size;
    std::size_t in_room = std::min(got, room);
    input_.commit(in_room);
    if (got > in_room) input_.append({spill, got - in_room});
    return r;
}

Coro<long> StreamTransport::wait_readable() {
    IoAwaiter io;
    io.return_errors = true;
    io.op.kind = IoOperation::Kind::PollIn;
    io.op.fd = fd_;
    long r;
    {
        WaitingRead waiting(*this);
        r = co_await io;
    }
    if (r == 0 && fd_ < 0) r = -ECANCELED;  // our own close() came first
    co_return r;
}

Coro<> StreamTransport::fill(std::shared_ptr<StreamTransport> self) {
    check_loop();
    check_read_error();
    if (reading_) throw std::logic_error("read() called while another task is already waiting for incoming data");
    if (eof_) co_return;
    if (fd_ < 0) {
        eof_ = true;
        co_return;
    }
    input_.prepare(kReadChunk);
    // A read straight away pays only when bytes may be waiting (the last read filled everything
    // it was given); otherwise the backend waits for them without a wasted syscall. While
    // messages are big, a readiness backend knows better (attempt_now answers -EAGAIN without a
    // syscall when no edge has come since the last short read).
    long r = try_direct_read_ || big_reads_on_readiness() ? read_now(input_.tail(), std::min(input_.room(), kSpill), true)
                                                            : -EAGAIN;
    while (r == -EAGAIN) {
        flush_held();  // what was kept back goes out before we wait
        if (big_reads_) {
            Coro<long> ready = wait_readable();
            r = co_await std::move(ready);
            if (r == 0) r = read_now(input_.tail(), std::min(input_.room(), kSpill), true);
            continue;
        }
        ReadAwaiter io(*this);
        io.return_errors = true;
        io.op.kind = is_socket_ ? IoOperation::Kind::Recv : IoOperation::Kind::Read;
        io.op.may_read_ahead = true;  // a stream's fd is never released to other code
        io.op.fd = fd_;
        io.op.buffer = input_.tail();
        io.op.length = std::min(input_.room(), kSpill);
        {
            WaitingRead waiting(*this);
            r = co_await io;
            if (r > 0) input_.commit(std::size_t(r));  // while the bytes' place is still pinned
        }
        if (r > 0) {
            try_direct_read_ = std::size_t(r) == io.op.length;
            big_reads_ = std::size_t(r) >= io.op.length / 2;
        }
    }
    if (r <= 0) {
        note_read_end(r);  // the peer closed, or our own close() took the fd away, or the error
        check_read_error();
    }
    (void)self;
}

bool StreamTransport::at_eof() noexcept {
    // Closed by our own close(): reads give end of stream (asyncio's connection_lost feeds eof).
    if (fd_ < 0 && closed_ && !read_error_) eof_ = true;
    if (!eof_ && input_.empty() && !read_error_ && !reading_ && fd_ >= 0 && loop_usable()) {
        try {
            input_.prepare(kReadChunk);
            long r = read_now(input_.tail(), std::min(input_.room(), kSpill), true);
            if (r == 0 || (r < 0 && r != -EAGAIN)) note_read_end(r);
        } catch (const std::bad_alloc&) {
            // No room to read into: the next read finds out.
        }
    }
    return eof_ && input_.empty() && !read_error_;
}

Coro<std::size_t> StreamTransport::read_into(std::shared_ptr<StreamTransport> self, char* data, std::size_t size) {
    check_loop();
    check_read_error();
    if (size == 0) co_return 0;
    if (!input_.empty()) {
        std::size_t n = std::min(size, input_.size());
        std::memcpy(data, input_.view().data(), n);
        consume_input(n);
        co_return n;
    }
    if (reading_) throw std::logic_error("read() called while another task is already waiting for incoming data");
    if (eof_ || fd_ < 0) {
        eof_ = true;
        co_return 0;
    }
    long r = try_direct_read_ || big_reads_on_readiness() ? read_now(data, size, false) : -EAGAIN;
    while (r == -EAGAIN) {
        flush_held();  // what was kept back goes out before we wait
        if (big_reads_) {
            Coro<long> ready = wait_readable();
            r = co_await std::move(ready);
            if (r == 0) r = read_now(data, size, false);
            continue;
        }
        // A completion backend reads into the caller's memory itself (no spill: the area is
        // shared, and this read would be in flight in the kernel).
        ReadIntoAwaiter io(*this);
        io.return_errors = true;
        io.op.kind = is_socket_ ? IoOperation::Kind::Recv : IoOperation::Kind::Read;
        io.op.may_read_ahead = true;
        io.op.fd = fd_;
        io.op.buffer = data;
        io.op.length = size;
        {
            WaitingRead waiting(*this);
            r = co_await io;
        }
        if (r > 0) {
            try_direct_read_ = std::size_t(r) == size;
            big_reads_ = std::size_t(r) >= size / 2;
        }
    }
    if (r > 0) co_return std::min(std::size_t(r), size);
    note_read_end(r);
    check_read_error();
    (void)self;
    co_return 0;
}

void StreamTransport::write(std::string_view data) {
    if (!loop_usable()) throw_wrong_loop();
    // A connection lost to an error drops what is written, as asyncio's does: drain() reports
    // the error (the transport closed itself, which is not the application's close()).
    if (eof_requested_) throw std::logic_error("corio: write() after write_eof()");
    // Server::close_clients() closed it for the handler (close_as_lost()): lost, to the handler.
    if (write_error_ || dropping_writes_) return;
    if (closing_) throw std::logic_error("corio: write() after close()");
    if (data.empty()) return;
    if (!write_in_flight_ && fd_ >= 0 && (held_ || buffered() == 0)) {
        // More input is already buffered: the application will likely write again before it
        // waits (the rest of an echo, the answer to a pipelined request). Keep this write back
        // until then, or until this loop tick ends, so that both leave in one syscall.
        if (!input_.empty() && data.size() <= kMaxHeldWrite && buffered() + data.size() <= high_ &&
            running_loop() == loop_) {
            hold(data);
            return;
        }
        send_now(data);
        return;
    }
    (write_in_flight_ ? pending_ : sending_).append(data);
    start_flush();
}

void StreamTransport::send_now(std::string_view data) {
    iovec iov[2];
    int count = 0;
    if (held_) iov[count++] = {const_cast<char*>(sending_.view().data()), sending_.size()};
    if (!data.empty()) iov[count++] = {const_cast<char*>(data.data()), data.size()};
    held_ = false;
    if (count == 0) return;
    long n = direct_write(is_socket_, fd_, iov, count);
    if (n < 0 && n != -EAGAIN) {
        connection_lost(os_error(n, "write"));
        return;
    }
    std::size_t sent = n > 0 ? std::size_t(n) : 0;
    std::size_t from_held = std::min(sent, sending_.size());
    sending_.consume(from_held);
    data.remove_prefix(sent - from_held);
    if (data.empty() && sending_.empty()) {
        // A task may wait in drain() for held bytes (its limits below them): they are gone.
        if (from_held > 0) after_output_progress();
        return;
    }
    sending_.append(data);  // the socket is full: the backend waits until it takes the rest
    start_flush();
}

void StreamTransport::hold(std::string_view data) {
    sending_.append(data);
    held_ = true;
    if (flush_scheduled_) return;
    // The end-of-tick flush: the write leaves in the tick that made it, before a run that ends
    // there returns. Should the loop drop it unrun (it closed), the write still goes out, as
    // asyncio's write() would have sent it at once.
    struct Flush {
        std::shared_ptr<StreamTransport> self;
        explicit Flush(std::shared_ptr<StreamTransport> t) noexcept : self(std::move(t)) {}
        Flush(Flush&&) noexcept = default;
        Flush& operator=(Flush&&) = delete;
        ~Flush() {
            if (!self) return;
            self->flush_scheduled_ = false;
            self->flush_directly();
        }
        void operator()() {
            std::shared_ptr<StreamTransport> t = std::move(self);
            t->flush_scheduled_ = false;
            // Nothing is in flight while a write is held: it leaves now, by a direct syscall (a
            // completion backend would only submit it at its next poll, after a run that ends
            // in this tick has returned).
            if (t->held_ && t->fd_ >= 0) t->send_now({});
        }
    };
    loop_->call_at_tick_end(Flush(shared_from_this()));
    flush_scheduled_ = true;
}

void StreamTransport::flush_directly() noexcept {
    if (write_in_flight_ || fd_ < 0 || write_error_) return;
    held_ = false;
    for (;;) {
        if (sending_.empty()) std::swap(sending_, pending_);
        if (sending_.empty()) return;
        iovec iov{const_cast<char*>(sending_.view().data()), sending_.size()};
        long n = direct_write(is_socket_, fd_, &iov, 1);
        if (n <= 0) return;  // full, or failed: what is left is lost with the connection
        sending_.consume(std::size_t(n));
    }
}

void StreamTransport::flush_held() {
    if (!held_) return;
    held_ = false;
    start_flush();
}

void StreamTransport::start_flush() {
    if (write_in_flight_ || held_ || fd_ < 0) return;
    if (sending_.empty()) std::swap(sending_, pending_);
    if (sending_.empty()) return;
    write_op_ = IoOperation{};
    write_op_.kind = is_socket_ ? IoOperation::Kind::Send : IoOperation::Kind::Write;
    write_op_.fd = fd_;
    write_op_.buffer = const_cast<char*>(sending_.view().data());
    write_op_.length = sending_.size();
    write_op_.complete = &StreamTransport::on_flushed;
    write_op_.user = this;
    write_in_flight_ = true;
    flush_keepalive_ = shared_from_this();
    loop_->backend().submit(write_op_);
}

void StreamTransport::on_flushed(IoOperation* op, long r) noexcept {
    auto* self = static_cast<StreamTransport*>(op->user);
    std::shared_ptr<StreamTransport> keep = std::move(self->flush_keepalive_);
    self->write_in_flight_ = false;
    if (r > 0 && self->write_error_) {
        // The connection was lost while this write was in flight: the rest is dropped.
        self->sending_ = ByteBuffer{};
        self->pending_ = ByteBuffer{};
    } else if (r > 0) {
        self->sending_.consume(std::size_t(r));
        try {
            self->start_flush();
        } catch (...) {
            self->write_error_ = std::current_exception();
        }
    } else if (r < 0 && r != -ECANCELED) {
        self->connection_lost(os_error(r, "write"));
    }
    self->after_output_progress();
}

void StreamTransport::after_output_progress() noexcept {
    if (buffered() <= low_ || write_error_) wake_all(drain_waiters_);
    if (buffered() != 0 && !write_error_) return;
    if (eof_requested_ && !eof_sent_ && fd_ >= 0) {
        eof_sent_ = true;
        if (is_socket_)
            ::shutdown(fd_, SHUT_WR);
        else
            close_fd();  // a pipe's write end: closing it is how the reader sees EOF
    }
    if (closing_) close_fd();
}

Coro<> StreamTransport::drain(std::shared_ptr<StreamTransport> self) {
    // asyncio's order: the reader's error first (a reset peer shows there), then the writer's.
    if (read_error_) std::rethrow_exception(read_error_);
    if (write_error_) std::rethrow_exception(write_error_);
    // Nothing written from now on can leave: a caller that awaits drain() to learn that the
    // connection still works must hear that it does not.
    if (closed_ || dropping_writes_) throw std::system_error(ECONNRESET, std::generic_category(), "Connection lost");
    if (buffered() > high_ && fd_ >= 0) check_loop();
    while (buffered() > high_ && !write_error_ && fd_ >= 0) {
        StateWaiter w(drain_waiters_);
        co_await w;
    }
    if (write_error_) std::rethrow_exception(write_error_);
    (void)self;
}

void StreamTransport::write_eof() {
    if (!loop_usable()) throw_wrong_loop();
    // Closing (by the application, close_clients() or a lost connection): as asyncio's, a no-op,
    // so that later writes are handled as after the close, not refused as after write_eof().
    if (eof_requested_ || closing_) return;
    eof_requested_ = true;
    flush_held();
    if (!write_in_flight_ && buffered() == 0) after_output_progress();
}

std::shared_ptr<StreamTransport> make_fd_transport(int fd, bool is_socket, std::size_t limit) {
    try {
        return std::make_shared<StreamTransport>(fd, is_socket, limit);
    } catch (...) {
        // Handed over, so nobody else will close it; through the loop, whose backend may have
        // it registered (a bare close() would leave that stale for the fd's next file).
        close_fd_on(running_loop(), fd);
        throw;
    }
}

}  // namespace detail
}  // namespace corio
