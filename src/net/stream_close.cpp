// StreamTransport's end: close() (also from another thread, or with the loop gone), the fd's
// close with an orderly end for the peer, and wait_closed()'s watch for a lost connection.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <system_error>
#include <utility>

#include "corio/loop.hpp"
#include "stream_transport.hpp"

namespace corio::detail {

bool StreamTransport::idle_loop_is_ours() const noexcept {
    if (!token_->open) return false;
    std::unique_lock alive = EventLoop::lock_if_alive(loop_);
    return alive && !loop_->is_closed() && !loop_->is_running() && loop_->owned_by_this_thread();
}

namespace {
thread_local bool t_handing_a_close = false;

// A close handed to the stream's loop. Dropped unrun by the loop as it closes, it closes the
// stream there and then (nobody else can touch it any more): the fd must not stay open until
// the last handle goes. Not when the hand-off itself fails: the caller closes then.
struct CloseOnItsLoop {
    std::shared_ptr<StreamTransport> transport;
    void operator()() { std::exchange(transport, nullptr)->close(); }
    CloseOnItsLoop(std::shared_ptr<StreamTransport> t) noexcept : transport(std::move(t)) {}
    CloseOnItsLoop(CloseOnItsLoop&&) noexcept = default;
    CloseOnItsLoop& operator=(CloseOnItsLoop&&) = delete;
    ~CloseOnItsLoop() {
        if (!transport || t_handing_a_close) return;
        try {
            transport->close();
        } catch (...) {
        }
    }
};
}  // namespace

bool StreamTransport::close_through_loop() noexcept {
    std::unique_lock alive = EventLoop::lock_if_alive(loop_);
    if (!alive || loop_->is_closed()) return false;
    t_handing_a_close = true;
    bool handed = true;
    try {
        loop_->call_soon_threadsafe(CloseOnItsLoop(shared_from_this()));
    } catch (...) {
        handed = false;  // the loop closed meanwhile: nothing else touches the stream now
    }
    t_handing_a_close = false;
    return handed;
}

void StreamTransport::close() {
    if (!loop_usable()) {
        // Closing must not fail, it is how a connection is cleaned up. The loop's own state
        // (its backend, the tasks that wait for the close) is touched only on its thread:
        // another thread hands the close to the loop while it is open. Its own thread, running
        // another loop, closes it here.
        if (token_->open && !idle_loop_is_ours() && close_through_loop()) return;
        // Its loop is closed or gone: what can leave without it does, then the fd closes.
        if (closing_) return;
        closing_ = true;
        close_fd();
        return;
    }
    if (closing_) return;
    closing_ = true;
    flush_held();
    if (!write_in_flight_ && buffered() == 0) close_fd();
}

void StreamTransport::close_as_lost() {
    if (closing_) return;
    dropping_writes_ = true;
    close();
}

void StreamTransport::abort() {
    if (!loop_usable()) throw_wrong_loop();
    if (closed_) return;
    dropping_writes_ = true;
    closing_ = true;
    held_ = false;
    // As a lost connection: nothing more leaves (flush_directly() and a returning write's
    // completion drop what is left), writes are dropped, and drain() says so.
    if (!write_error_)
        write_error_ = std::make_exception_ptr(std::system_error(ECONNRESET, std::generic_category(), "Connection lost"));
    pending_ = ByteBuffer{};
    wake_all(drain_waiters_);
    if (write_in_flight_) {
        loop_->backend().cancel(write_op_);  // its completion closes the fd
        return;
    }
    sending_ = ByteBuffer{};
    close_fd();
}

// Bytes from the peer that nobody read make the kernel answer close() with a reset instead of
// an orderly end (TCP's RST; a Unix socket's peer gets ECONNRESET): what we wrote and has not
// left yet is thrown away, and the peer's read fails instead of reaching the end of our answer.
// asyncio's transport has read them ahead (up to twice the limit); they are read and dropped
// here, as much as that.
void StreamTransport::discard_unread_input() noexcept {
    if (!is_socket_ || eof_ || read_error_) return;
    char* area = nullptr;
    try {
        area = spill_area();
    } catch (const std::bad_alloc&) {
        return;
    }
    for (std::size_t budget = std::max(2 * limit_, kSpill); budget > 0;) {
        const ssize_t r = ::recv(fd_, area, std::min(budget, kSpill), MSG_DONTWAIT);
        if (r > 0)
            budget -= std::min(budget, std::size_t(r));
        else if (r == 0 || errno != EINTR)
            break;
    }
}

void StreamTransport::close_fd() noexcept {
    if (fd_ >= 0) {
        flush_directly();
        discard_unread_input();
        // Whether the loop runs or not: a registration left behind would make the next file
        // with this number wait forever.
        close_fd_on(token_->open ? loop_ : nullptr, fd_);
        fd_ = -1;
    }
    if (!closed_) {
        closed_ = true;
        wake_all(drain_waiters_);
        wake_all(closed_waiters_);
    }
}

// asyncio's transport reads whenever bytes come, whoever waits, so a reset closes it (and
// wait_closed() returns) while nobody reads; here a waiting reader's read notices the reset,
// and while none waits, wait_closed() watches for it. As in asyncio, an end of stream leaves
// the connection open (half-closed), and a full input buffer (twice the limit) stops the watch.
Coro<> StreamTransport::wait_closed(std::shared_ptr<StreamTransport> self) {
    if (!closed_) check_loop();
    bool watch = true;
    while (!closed_) {
        if (watch && unwatched()) {
            Coro<bool> watching = watch_for_loss();
            watch = co_await std::move(watching);
            continue;
        }
        StateWaiter w(closed_waiters_);
        co_await w;
    }
    (void)self;
}

Coro<bool> StreamTransport::watch_for_loss() {
    IoAwaiter io;
    io.return_errors = true;
    io.op.kind = IoOperation::Kind::PollIn;
    io.op.fd = fd_;
    long r = co_await io;
    if (r == -ECANCELED) co_return false;  // our close(), or the fd released: no end of stream
    if (!unwatched()) co_return true;      // a reader came, or the buffer is full
    if (r == 0) {
        input_.prepare(kReadChunk);
        r = read_now(input_.tail(), std::min(input_.room(), kSpill), true);
    }
    if (r <= 0 && r != -EAGAIN) note_read_end(r);
    co_return true;
}

}  // namespace corio::detail
