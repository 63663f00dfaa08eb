// The one interface between the loop and the operating system's I/O facility.
//
// It is completion-style, so that both readiness APIs (epoll: try the syscall, wait for
// readiness, retry) and completion APIs (io_uring: submit, reap) fit behind it: the loop hands
// the backend an IoOperation and is told, from inside poll(), when it has completed. The core
// (loop, tasks, sync) knows only this header; backends live in src/io/.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

struct iovec;
struct sockaddr;

namespace corio {

struct IoOperation {
    enum class Kind : std::uint8_t { Read, Write, Recv, Send, Accept, Connect, RecvFrom, SendTo, PollIn, PollOut, ReadV };
    Kind kind = Kind::Read;
    // The caller keeps the fd until it closes it and reads everything read from it, so a read
    // may take more than asked for and keep it for the next (io_uring's multishot receive).
    // Not for a socket its owner may release() to other code: what was read ahead would be lost.
    bool may_read_ahead = false;
    int fd = -1;
    void* buffer = nullptr;  // ReadV: an array of `iovec`
    std::size_t length = 0;  // ReadV: how many iovecs
    int flags = 0;
    sockaddr* address = nullptr;  // Connect, SendTo: in; Accept, RecvFrom: out
    unsigned address_length = 0;  // in/out, as the socket calls use it
    // Runs on the loop thread, from poll(), exactly once per submission:
    // result >= 0 as the syscall returns it, or -errno (-ECANCELED after cancel()).
    void (*complete)(IoOperation* op, long result) = nullptr;
    void* user = nullptr;

    // Private to the backend that holds the operation.
    IoOperation* next_ = nullptr;
    IoOperation* prev_ = nullptr;
    long result_ = 0;
    std::uint8_t where_ = 0;     // not held / queued on its fd / completed, awaiting delivery
    std::uint8_t progress_ = 0;  // Connect: the connect() call has been made
    alignas(8) unsigned char scratch_[80];  // e.g. io_uring's msghdr + iovec for RecvFrom/SendTo
};

class IoBackend {
public:
    virtual ~IoBackend() = default;
    virtual const char* name() const noexcept = 0;

    // Waits at most `timeout` (negative: without limit, zero: not at all) for completions or a
    // wakeup, and runs the completions. Returns how many completed.
    virtual std::size_t poll(std::chrono::nanoseconds timeout) = 0;
    // Thread-safe: makes a poll in progress return, or the next one return at once.
    virtual void wakeup() noexcept = 0;

    virtual void submit(IoOperation& op) = 0;
    // Asks a submitted operation to finish early; it still completes through `complete`,
    // with -ECANCELED unless it had already finished.
    virtual void cancel(IoOperation& op) = 0;
    // Makes the operation's syscall now, on the caller's stack, and never queues it: returns
    // its result (>= 0), -EAGAIN when it would block, or -errno. For the data kinds only (Read,
    // Write, Recv, Send, ReadV; -EOPNOTSUPP for the others); the caller orders it against its
    // own submitted operations. A readiness backend notes what the result says about the fd
    // (EAGAIN or a short transfer: drained until the next event), so that a PollIn/PollOut
    // submitted next waits for that event without testing first, and may answer -EAGAIN
    // without a syscall while it knows no event has come since.
    virtual long attempt_now(IoOperation& op) noexcept = 0;
    // True when the backend waits for readiness and makes the syscalls itself from poll()
    // (epoll): waiting with PollIn, then attempt_now(), costs no more than submitting the read.
    // False for a completion backend (io_uring), where a submitted read saves that syscall.
    virtual bool readiness_based() const noexcept = 0;
    // Operations submitted and not yet completed.
    virtual std::size_t pending() const noexcept = 0;
    // Forgets everything about `fd` before it is closed: its operations complete with
    // -ECANCELED (the fd number may come back for another file at once).
    virtual void release_fd(int fd) noexcept = 0;
    // The loop is closing: every operation still held completes now, with -ECANCELED (or its
    // result), so that whatever waits on one (a transport flushing to a peer that never reads)
    // lets go.
    virtual void cancel_all() noexcept = 0;
};

// The backend named by the CORIO_BACKEND environment variable ("epoll" or "io_uring"), epoll
// when it is unset (io_uring is chosen explicitly: containers often forbid it, and it does not
// yet lead epoll at every message size, see docs/BENCHMARKS.md).
std::unique_ptr<IoBackend> make_default_backend();
std::unique_ptr<IoBackend> make_epoll_backend();
// nullptr when io_uring is missing, too old, or forbidden here.
std::unique_ptr<IoBackend> make_io_uring_backend();

namespace detail {
// The non-blocking syscall behind a data operation (Read, Write, Recv, Send, ReadV): its
// result, -EAGAIN when it would block, -EOPNOTSUPP for another kind. EINTR is retried.
long transfer_now(IoOperation& op) noexcept;

// io_uring's provided receive buffers, for tests and diagnostics (all zero for another backend).
struct ProvidedBufferStats {
    bool available = false;       // registered: stream sockets are read by multishot receives
    std::size_t buffers = 0;      // in the ring
    std::size_t buffer_size = 0;  // bytes each
    std::size_t taken = 0;        // filled by the kernel and not yet given back (unread bytes)
    std::size_t armed = 0;        // sockets with a multishot receive in the kernel
    std::size_t nobufs = 0;       // multishot receives the ring running dry has ended
};
ProvidedBufferStats provided_buffer_stats(const IoBackend& backend) noexcept;
}  // namespace detail

}  // namespace corio
