#include "corio/streams.hpp"

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

namespace corio {

IncompleteReadError::IncompleteReadError(std::string p, std::optional<std::size_t> e)
    : std::runtime_error(std::to_string(p.size()) + " bytes read on a total of " +
                         (e ? std::to_string(*e) : std::string("undefined")) + " expected bytes"),
      partial(std::move(p)),
      expected(e) {}

namespace detail {

namespace {
constexpr std::size_t kReadChunk = 64 * 1024;
// What one read may take beyond the caller's memory (uvloop reads 256 KiB at a time): a read
// that comes back short says the socket is drained, so that an edge-triggered reader needs no
// second syscall to find out.
constexpr std::size_t kSpill = 256 * 1024;

// The thread's spill area. It holds bytes only during one synchronous readv: they are copied
// into the reader's buffer before anything else runs, so one area serves every connection (it
// is never handed to a backend, which could fill it for several reads before they are copied).
char* spill_area() {
    thread_local std::unique_ptr<char[]> area;
    if (!area) area.reset(new char[kSpill]);
    return area.get();
}

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
}  // namespace

// One connection's fd and buffers, shared by its reader and writer.
class StreamTransport : public std::enable_shared_from_this<StreamTransport> {
public:
    StreamTransport(int fd, bool is_socket, std::size_t limit)
        : fd_(fd), is_socket_(is_socket), limit_(limit), loop_(running_loop()) {
        if (limit == 0) throw std::invalid_argument("corio: the stream limit must be positive");
    }
    ~StreamTransport() { close_fd(); }

    int fd() const noexcept { return fd_; }
    std::size_t limit() const noexcept { return limit_; }
    ByteBuffer& input() noexcept { return input_; }
    bool at_eof() const noexcept { return eof_ && input_.empty(); }
    bool eof() const noexcept { return eof_; }

    // Reads once into the input buffer (or notes the end, or throws the error).
    Coro<> fill(std::shared_ptr<StreamTransport> self);
    // One readv, now: into [data, data + size), then into the input buffer (its free room, then
    // the spill area, whose bytes are appended at once), so what lands beyond `data` follows in
    // input_ in order. `data` may be input_'s own free room (fill). Returns the syscall's result.
    long read_now(char* data, std::size_t size, bool into_input);
    // Waits until the fd is readable; 0, or -errno (-ECANCELED: closed).
    Coro<long> wait_readable();
    // Big messages on epoll: attempt_now knows, without a syscall, whether a read can pay.
    bool big_reads_on_readiness() const noexcept { return big_reads_ && loop_->backend().readiness_based(); }
    // Reads straight into the caller's memory when nothing is buffered (no copy at all).
    Coro<std::size_t> read_into(std::shared_ptr<StreamTransport> self, char* data, std::size_t size);

    void write(std::string_view data);
    Coro<> drain(std::shared_ptr<StreamTransport> self);
    void write_eof();
    void close();
    bool closing() const noexcept { return closing_; }
    Coro<> wait_closed(std::shared_ptr<StreamTransport> self);
    std::size_t buffered() const noexcept { return sending_.size() + pending_.size(); }
    void set_limits(std::size_t high, std::size_t low) {
        high_ = high;
        low_ = low;
    }

private:
    // Marks a read as waiting for as long as it is in scope (a second reader is refused).
    struct WaitingRead {
        explicit WaitingRead(bool& flag) : flag(flag) { flag = true; }
        ~WaitingRead() { flag = false; }
        WaitingRead(const WaitingRead&) = delete;
        WaitingRead& operator=(const WaitingRead&) = delete;
        bool& flag;
    };
    struct ReadAwaiter final : IoAwaiter {
        explicit ReadAwaiter(StreamTransport& t) : transport(t) {}
        StreamTransport& transport;
        // Bytes that arrived as the read was cancelled belong to the buffer: the next read
        // returns them.
        void completed_while_cancelled(long r) noexcept override {
            if (r > 0) transport.input_.commit(std::size_t(r));
            if (r == 0) transport.eof_ = true;
        }
    };
    // A read into the caller's memory: bytes that arrive as it is cancelled are copied into the
    // stream's buffer, so that the next read still returns them.
    struct ReadIntoAwaiter final : IoAwaiter {
        explicit ReadIntoAwaiter(StreamTransport& t) : transport(t) {}
        StreamTransport& transport;
        void completed_while_cancelled(long r) noexcept override {
            if (r > 0) {
                try {
                    transport.input_.append({static_cast<const char*>(op.buffer), std::size_t(r)});
                } catch (...) {
                }
            }
            if (r == 0) transport.eof_ = true;
        }
    };
    struct StateWaiter final : ListedWaitNode {
        explicit StateWaiter(WaitList& l) : list(l) {}
        WaitList& list;
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> h) {
            if (!suspend(h)) return false;
            list.push_back(*this);
            return true;
        }
        void await_resume() const { throw_if_cancelled(); }
        void detach() noexcept override { list.remove(*this); }
    };
    static void wake_all(WaitList& l) noexcept {
        while (WaitNode* n = l.pop_front()) n->wake();
    }

    void start_flush();
    // Keeps `data` back (in sending_) until the application writes again or this loop turn ends.
    void hold(std::string_view data);
    // Hands what hold() kept to the backend.
    void flush_held();
    static void on_flushed(IoOperation* op, long r) noexcept;
    void after_output_progress() noexcept;
    void close_fd() noexcept;

    int fd_;
    bool is_socket_;
    std::size_t limit_;
    EventLoop* loop_;

    ByteBuffer input_;
    bool eof_ = false;
    bool reading_ = false;
    bool try_direct_read_ = true;
    // The last read filled at least half the memory it was given first: big messages, which a
    // read with the spill area takes in one syscall once they are all there (loopback delivers
    // 64 KiB segments one by one). So then the reader waits for readiness and reads itself;
    // otherwise it submits a plain read of the caller's memory, as small messages want (a short
    // read tells "drained" just as well, and the backend makes the call itself).
    bool big_reads_ = false;

    ByteBuffer sending_;  // frozen while the backend holds a pointer into it
    ByteBuffer pending_;  // what write() adds meanwhile
    IoOperation write_op_;
    bool write_in_flight_ = false;
    bool held_ = false;             // sending_ holds a write kept back, not yet handed over
    bool flush_scheduled_ = false;  // flush_held() is due at the end of this loop turn
    std::shared_ptr<StreamTransport> flush_keepalive_;
    std::exception_ptr write_error_;
    std::size_t high_ = 64 * 1024;
    std::size_t low_ = 16 * 1024;
    bool closing_ = false;
    bool eof_requested_ = false;
    bool eof_sent_ = false;
    bool closed_ = false;
    WaitList drain_waiters_;
    WaitList closed_waiters_;
};

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
        WaitingRead waiting(reading_);
        r = co_await io;
    }
    if (r == 0 && fd_ < 0) r = -ECANCELED;  // our own close() came first
    co_return r;
}

Coro<> StreamTransport::fill(std::shared_ptr<StreamTransport> self) {
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
        io.op.fd = fd_;
        io.op.buffer = input_.tail();
        io.op.length = std::min(input_.room(), kSpill);
        {
            WaitingRead waiting(reading_);
            r = co_await io;
        }
        if (r > 0) {
            input_.commit(std::size_t(r));
            try_direct_read_ = std::size_t(r) == io.op.length;
            big_reads_ = std::size_t(r) >= io.op.length / 2;
        }
    }
    if (r == 0 || r == -ECANCELED) {
        eof_ = true;  // the peer closed, or our own close() took the fd away
    } else if (r < 0) {
        eof_ = true;
        std::rethrow_exception(os_error(r, "read"));
    }
    (void)self;
}

Coro<std::size_t> StreamTransport::read_into(std::shared_ptr<StreamTransport> self, char* data, std::size_t size) {
    if (size == 0) co_return 0;
    if (!input_.empty()) {
        std::size_t n = std::min(size, input_.size());
        std::memcpy(data, input_.view().data(), n);
        input_.consume(n);
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
        io.op.fd = fd_;
        io.op.buffer = data;
        io.op.length = size;
        {
            WaitingRead waiting(reading_);
            r = co_await io;
        }
        if (r > 0) {
            try_direct_read_ = std::size_t(r) == size;
            big_reads_ = std::size_t(r) >= size / 2;
        }
    }
    if (r > 0) co_return std::min(std::size_t(r), size);
    eof_ = true;
    if (r == 0 || r == -ECANCELED) co_return 0;
    std::rethrow_exception(os_error(r, "read"));
    (void)self;
}

void StreamTransport::write(std::string_view data) {
    if (closing_ || eof_requested_) throw std::logic_error("corio: write() after close() or write_eof()");
    if (write_error_ || data.empty()) return;  // drain() reports the error
    if (!write_in_flight_ && fd_ >= 0 && (held_ || buffered() == 0)) {
        // More input is already buffered: the application will likely write again before it
        // waits (the rest of an echo, the answer to a pipelined request). Keep this write back
        // until then, or until this loop turn ends, so that both leave in one syscall.
        if (!input_.empty() && buffered() + data.size() <= high_ && running_loop() == loop_) {
            hold(data);
            return;
        }
        iovec iov[2];
        int count = 0;
        if (held_) iov[count++] = {const_cast<char*>(sending_.view().data()), sending_.size()};
        iov[count++] = {const_cast<char*>(data.data()), data.size()};
        held_ = false;
        long n = direct_write(is_socket_, fd_, iov, count);
        if (n < 0 && n != -EAGAIN) {
            write_error_ = os_error(n, "write");
            sending_ = ByteBuffer{};
            wake_all(drain_waiters_);
            return;
        }
        std::size_t sent = n > 0 ? std::size_t(n) : 0;
        std::size_t from_held = std::min(sent, sending_.size());
        sending_.consume(from_held);
        data.remove_prefix(sent - from_held);
        if (data.empty() && sending_.empty()) return;
    }
    (write_in_flight_ ? pending_ : sending_).append(data);
    start_flush();
}

void StreamTransport::hold(std::string_view data) {
    sending_.append(data);
    held_ = true;
    if (flush_scheduled_) return;
    flush_scheduled_ = true;
    loop_->call_soon([self = shared_from_this()] {
        self->flush_scheduled_ = false;
        self->flush_held();
    });
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
    if (r > 0) {
        self->sending_.consume(std::size_t(r));
        try {
            self->start_flush();
        } catch (...) {
            self->write_error_ = std::current_exception();
        }
    } else if (r < 0 && r != -ECANCELED) {
        self->write_error_ = os_error(r, "write");
        self->sending_ = ByteBuffer{};
        self->pending_ = ByteBuffer{};
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
    if (write_error_) std::rethrow_exception(write_error_);
    while (buffered() > high_ && !write_error_ && fd_ >= 0) {
        StateWaiter w(drain_waiters_);
        co_await w;
    }
    if (write_error_) std::rethrow_exception(write_error_);
    (void)self;
}

void StreamTransport::write_eof() {
    if (eof_requested_) return;
    eof_requested_ = true;
    flush_held();
    if (!write_in_flight_ && buffered() == 0) after_output_progress();
}

void StreamTransport::close() {
    if (closing_) return;
    closing_ = true;
    flush_held();
    if (!write_in_flight_ && buffered() == 0) close_fd();
}

void StreamTransport::close_fd() noexcept {
    if (fd_ >= 0) {
        if (loop_ && running_loop() == loop_) loop_->backend().release_fd(fd_);
        ::close(fd_);
        fd_ = -1;
    }
    if (!closed_) {
        closed_ = true;
        wake_all(drain_waiters_);
        wake_all(closed_waiters_);
    }
}

Coro<> StreamTransport::wait_closed(std::shared_ptr<StreamTransport> self) {
    while (!closed_) {
        StateWaiter w(closed_waiters_);
        co_await w;
    }
    (void)self;
}

std::shared_ptr<StreamTransport> make_fd_transport(int fd, bool is_socket, std::size_t limit) {
    return std::make_shared<StreamTransport>(fd, is_socket, limit);
}

namespace {

Coro<std::string> read_some(std::shared_ptr<StreamTransport> t, long n) {
    if (n == 0) co_return std::string();
    if (n < 0) {
        while (!t->eof()) {
            Coro<> more = t->fill(t);
            co_await std::move(more);
        }
        co_return t->input().take(t->input().size());
    }
    if (t->input().empty() && !t->eof()) {
        Coro<> more = t->fill(t);
        co_await std::move(more);
    }
    co_return t->input().take(std::size_t(n));
}

Coro<std::string> read_until(std::shared_ptr<StreamTransport> t, std::string sep) {
    if (sep.empty()) throw std::invalid_argument("readuntil(): the separator must not be empty");
    std::size_t searched = 0;
    for (;;) {
        std::string_view buf = t->input().view();
        std::size_t from = searched > sep.size() ? searched - sep.size() + 1 : 0;
        std::size_t at = buf.find(sep, from);
        if (at != std::string_view::npos) {
            // asyncio's rule: too long only when the separator starts past the limit.
            if (at > t->limit()) throw LimitOverrunError("Separator is found, but chunk is longer than limit", at);
            co_return t->input().take(at + sep.size());
        }
        searched = buf.size();
        if (buf.size() + 1 > t->limit() + sep.size())
            throw LimitOverrunError("Separator is not found, and chunk exceed the limit", buf.size() + 1 - sep.size());
        if (t->eof()) {
            std::string partial = t->input().take(buf.size());
            throw IncompleteReadError(std::move(partial), std::nullopt);
        }
        Coro<> more = t->fill(t);
        co_await std::move(more);
    }
}

Coro<std::string> read_line(std::shared_ptr<StreamTransport> t) {
    try {
        Coro<std::string> line = read_until(t, "\n");
        co_return co_await std::move(line);
    } catch (IncompleteReadError& e) {
        co_return std::move(e.partial);
    } catch (const LimitOverrunError&) {
        // asyncio's readline drops the overlong line (up to a separator, if there is one).
        std::string_view buf = t->input().view();
        std::size_t nl = buf.find('\n');
        t->input().consume(nl == std::string_view::npos ? buf.size() : nl + 1);
        throw;
    }
}

Coro<std::string> read_exactly(std::shared_ptr<StreamTransport> t, std::size_t n) {
    while (t->input().size() < n && !t->eof()) {
        Coro<> more = t->fill(t);
        co_await std::move(more);
    }
    if (t->input().size() < n) {
        std::string partial = t->input().take(t->input().size());
        throw IncompleteReadError(std::move(partial), n);
    }
    co_return t->input().take(n);
}

std::shared_ptr<StreamTransport> require(const std::shared_ptr<StreamTransport>& t) {
    if (!t) throw std::logic_error("corio: this stream is not connected");
    return t;
}

}  // namespace
}  // namespace detail

Coro<std::string> StreamReader::read(long n) { return detail::read_some(detail::require(t_), n); }
Coro<std::size_t> StreamReader::read_into(std::span<char> buffer) {
    auto t = detail::require(t_);
    return t->read_into(t, buffer.data(), buffer.size());
}
Coro<std::string> StreamReader::readline() { return detail::read_line(detail::require(t_)); }
Coro<std::string> StreamReader::readexactly(std::size_t n) { return detail::read_exactly(detail::require(t_), n); }
Coro<std::string> StreamReader::readuntil(std::string separator) {
    return detail::read_until(detail::require(t_), std::move(separator));
}
bool StreamReader::at_eof() const noexcept { return !t_ || t_->at_eof(); }
std::size_t StreamReader::limit() const noexcept { return t_ ? t_->limit() : default_stream_limit; }

void StreamWriter::write(std::string_view data) { detail::require(t_)->write(data); }
void StreamWriter::writelines(const std::vector<std::string>& lines) {
    for (const auto& l : lines) write(l);
}
Coro<> StreamWriter::drain() { return detail::require(t_)->drain(t_); }
void StreamWriter::write_eof() { detail::require(t_)->write_eof(); }
void StreamWriter::close() {
    if (t_) t_->close();
}
bool StreamWriter::is_closing() const noexcept { return !t_ || t_->closing(); }
Coro<> StreamWriter::wait_closed() { return detail::require(t_)->wait_closed(t_); }
Coro<> StreamWriter::aclose() {
    close();
    return wait_closed();
}
std::size_t StreamWriter::get_write_buffer_size() const noexcept { return t_ ? t_->buffered() : 0; }
void StreamWriter::set_write_buffer_limits(std::size_t high, std::optional<std::size_t> low) {
    detail::require(t_)->set_limits(high, low ? *low : high / 4);
}

std::optional<SocketAddress> StreamWriter::get_extra_info(std::string_view name) const {
    if (!t_ || t_->fd() < 0) return std::nullopt;
    Socket view(t_->fd());
    std::optional<SocketAddress> out;
    try {
        if (name == "peername") out = view.getpeername();
        if (name == "sockname") out = view.getsockname();
    } catch (const std::system_error&) {
    }
    view.release();
    return out;
}

StreamPair make_streams(Socket socket, std::size_t limit) {
    if (limit == 0) throw std::invalid_argument("corio: the stream limit must be positive");
    auto t = detail::make_fd_transport(socket.release(), true, limit);
    return StreamPair(StreamReader(t), StreamWriter(t));
}

namespace {
Coro<StreamPair> connect_to(SocketAddress address, ConnectOptions options) {
    Socket s = Socket::create(address.family(), SOCK_STREAM);
    if (options.nodelay && address.family() != AF_UNIX) s.set_option(IPPROTO_TCP, TCP_NODELAY, 1);
    co_await sock_connect(s, address);
    co_return make_streams(std::move(s), options.limit);
}
}  // namespace

Coro<StreamPair> open_connection(std::string host, std::uint16_t port, ConnectOptions options) {
    std::vector<SocketAddress> addresses = co_await detail::resolve(host, port, SOCK_STREAM);
    std::exception_ptr last;
    for (const auto& a : addresses) {
        try {
            co_return co_await connect_to(a, options);
        } catch (const std::system_error&) {
            last = std::current_exception();
        }
    }
    if (last) std::rethrow_exception(last);
    throw std::system_error(EHOSTUNREACH, std::generic_category(), "open_connection: no address for " + host);
}

Coro<StreamPair> open_unix_connection(std::string path, ConnectOptions options) {
    co_return co_await connect_to(SocketAddress::unix_path(path), options);
}

}  // namespace corio
