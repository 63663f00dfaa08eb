// The transport under a StreamReader/StreamWriter pair: one connection's fd, its input buffer
// and its output buffers, and how bytes move between them and the kernel (the I/O mechanics;
// streams.cpp has asyncio's StreamReader/StreamWriter API on top). Internal to src/net.
#pragma once

#include <atomic>
#include <cerrno>
#include <memory>
#include <string_view>

#include "corio/backend.hpp"
#include "corio/detail/byte_buffer.hpp"
#include "corio/detail/task_base.hpp"
#include "corio/loop.hpp"
#include "corio/streams.hpp"

namespace corio::detail {

// Whether a loop is still open. A loop's address alone cannot tell: the next loop is often
// allocated where the last one was. Shared by the transports made on one loop, and closed
// with it (it is one of the loop's services).
struct LoopToken {
    EventLoop* loop = nullptr;
    std::atomic<bool> open{true};  // read by a thread that closes a stream off its loop
};
// The running loop's token; std::logic_error when no loop is running.
std::shared_ptr<LoopToken> running_loop_token();

inline constexpr std::size_t kReadChunk = 64 * 1024;
// What one read may take beyond the caller's memory (uvloop reads 256 KiB at a time): a read
// that comes back short says the socket is drained, so that an edge-triggered reader needs no
// second syscall to find out.
inline constexpr std::size_t kSpill = 256 * 1024;
// The thread's spill area (kSpill bytes; std::bad_alloc). It holds bytes only during one
// synchronous read: they are copied into a reader's buffer, or dropped, before anything else runs.
char* spill_area();

// One connection's fd and buffers, shared by its reader and writer.
class StreamTransport : public std::enable_shared_from_this<StreamTransport> {
public:
    StreamTransport(int fd, bool is_socket, std::size_t limit)
        : fd_(fd), is_socket_(is_socket), limit_(limit), token_(running_loop_token()), loop_(token_->loop) {
        if (limit == 0) throw std::invalid_argument("corio: the stream limit must be positive");
    }
    ~StreamTransport() { close_fd(); }

    // Refuses (std::logic_error) to work from any other loop than the stream's own, running.
    void check_loop() const {
        if (running_loop() != loop_ || !token_->open) throw_wrong_loop();
    }
    // The error a read met; every later read throws it again (asyncio's exception()).
    std::exception_ptr read_error() const noexcept { return read_error_; }
    void check_read_error() const {
        if (read_error_) std::rethrow_exception(read_error_);
    }

    int fd() const noexcept { return fd_; }
    std::size_t limit() const noexcept { return limit_; }
    const ByteBuffer& input() const noexcept { return input_; }
    // Takes bytes out of the input buffer (which may let wait_closed()'s watch go on).
    std::string take_input(std::size_t n) {
        std::string bytes = input_.take(n);
        input_taken();
        return bytes;
    }
    void consume_input(std::size_t n) noexcept {
        input_.consume(n);
        input_taken();
    }
    // asyncio's at_eof(): the end was received and everything before it read. With nothing
    // buffered the fd is asked without waiting: asyncio's transport reads ahead, so it has seen
    // an end that came right behind the last data, where corio reads only when asked.
    bool at_eof() noexcept;
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
    // close() on the handler's behalf (Server::close_clients()): to the handler the connection
    // is lost, so its later writes are dropped as after a reset, not refused as after its own close().
    void close_as_lost();
    // asyncio's transport.abort(): the buffers are dropped and the fd closes now (once a write
    // the backend holds has come back).
    void abort();
    bool closing() const noexcept { return closing_; }
    Coro<> wait_closed(std::shared_ptr<StreamTransport> self);
    std::size_t buffered() const noexcept { return sending_.size() + pending_.size(); }
    // What is still to leave: nothing once the connection is lost or aborted (a write the
    // backend holds keeps its bytes until it comes back, and then drops them).
    std::size_t unsent() const noexcept { return write_error_ ? 0 : buffered(); }
    void set_limits(std::size_t high, std::size_t low) {
        high_ = high;
        low_ = low;
    }

private:
    // Marks a read as waiting for as long as it is in scope: a second waiting reader is
    // refused, and the input buffer stays where it is (fill() reads into its free room, while
    // another task may still take the bytes already buffered, as asyncio allows).
    struct WaitingRead {
        explicit WaitingRead(StreamTransport& t) : transport(t) {
            transport.reading_ = true;
            transport.input_.pin(true);
        }
        ~WaitingRead() {
            transport.reading_ = false;
            transport.input_.pin(false);
            transport.input_taken();  // wait_closed() watches while nobody reads: it may go on
        }
        WaitingRead(const WaitingRead&) = delete;
        WaitingRead& operator=(const WaitingRead&) = delete;
        StreamTransport& transport;
    };
    struct ReadAwaiter final : IoAwaiter {
        explicit ReadAwaiter(StreamTransport& t) : transport(t) {}
        StreamTransport& transport;
        // Bytes that arrived as the read was cancelled belong to the buffer: the next read
        // returns them.
        void completed_while_cancelled(long r) noexcept override {
            if (r > 0) transport.input_.commit(std::size_t(r));
            if (r == 0) transport.note_read_end(r);  // bytes are no end: the stream goes on
        }
        void completed(long r) noexcept override { transport.note_read_error_early(r); }
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
            if (r == 0) transport.note_read_end(r);
        }
        void completed(long r) noexcept override { transport.note_read_error_early(r); }
    };
    struct StateWaiter final : ListedWaitNode {
        explicit StateWaiter(WaitList& l) : list(l) {}
        WaitList& list;
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> h) {
            if (!suspend(h)) return true;  // woken already, to take a pending cancellation
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
    // Keeps `data` back (in sending_) until the application writes again or this loop tick ends.
    void hold(std::string_view data);
    // Hands what hold() kept to the backend.
    void flush_held();
    // With nothing in flight: sends what hold() kept, then `data`, in one direct syscall; the
    // backend takes what the socket does not.
    void send_now(std::string_view data);
    static void on_flushed(IoOperation* op, long r) noexcept;
    void after_output_progress() noexcept;
    // Sends what is buffered and not in the backend's hands, now, as far as the socket takes it
    // without blocking: the fd is about to close, or the loop went away, before a flush ran.
    void flush_directly() noexcept;
    void discard_unread_input() noexcept;
    void close_fd() noexcept;
    // 0: the end; < 0 (but -ECANCELED, our own close): the error, kept for every later read.
    void note_read_end(long r) noexcept;
    // A read's error, taken as its completion comes: a drain() woken in the same poll by the
    // write that failed then reports the read's error (the reset), not the write's broken pipe.
    void note_read_error_early(long r) noexcept {
        // Not the results that only mean "try again" (the caller's loop retries them).
        if (r < 0 && r != -ECANCELED && r != -EAGAIN && r != -EWOULDBLOCK && r != -EINTR) note_read_end(r);
    }
    // Open, and no reader waiting to notice a reset: wait_closed() watches for one itself.
    bool unwatched() const noexcept {
        return is_socket_ && fd_ >= 0 && !closing_ && !reading_ && !eof_ && !read_error_ && input_.size() < 2 * limit_;
    }
    // Waits for the socket to be readable, then reads what came into the input buffer, noting
    // the end or the error (which loses the connection) as a read would. False when the wait
    // was cancelled under it (the fd released): no watching then.
    Coro<bool> watch_for_loss();
    // A full buffer (or a waiting reader) stopped wait_closed()'s watch: it may go on now.
    void input_taken() noexcept {
        if (!closed_waiters_.empty()) wake_all(closed_waiters_);
    }
    [[noreturn]] void throw_wrong_loop() const;
    // Whether loop_ may be used from here: it is the running loop, or no loop runs here and
    // loop_ is open and this thread's (a write or close between two runs of a Runner).
    bool loop_usable() const noexcept {
        EventLoop* running = running_loop();
        if (running == loop_) return token_->open;
        return !running && idle_loop_is_ours();
    }
    bool idle_loop_is_ours() const noexcept;
    // close() from a thread that may not touch the loop while it is open: the loop does it.
    bool close_through_loop() noexcept;
    // A fatal error on the connection (asyncio's _force_close): see the definition.
    void connection_lost(std::exception_ptr error) noexcept;

    int fd_;
    bool is_socket_;
    std::size_t limit_;
    std::shared_ptr<LoopToken> token_;
    EventLoop* loop_;
    std::exception_ptr read_error_;
    bool read_error_is_own_ = false;  // a read's error, not one a failed write stood in for

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
    bool flush_scheduled_ = false;  // flush_held() is due at the end of this loop tick
    std::shared_ptr<StreamTransport> flush_keepalive_;
    std::exception_ptr write_error_;
    std::size_t high_ = 64 * 1024;
    std::size_t low_ = 16 * 1024;
    bool closing_ = false;
    bool dropping_writes_ = false;  // close_as_lost()
    bool eof_requested_ = false;
    bool eof_sent_ = false;
    bool closed_ = false;
    WaitList drain_waiters_;
    WaitList closed_waiters_;
};

}  // namespace corio::detail
