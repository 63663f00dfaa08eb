// One I/O operation awaited by a task: the bridge between the backend's completions and the
// wait protocol. A cancelled operation is cancelled in the backend and still waited for: the
// buffer and the frame stay valid until the backend lets go of them.
#pragma once

#include <coroutine>

#include "corio/backend.hpp"
#include "corio/detail/wait_node.hpp"

namespace corio::detail {

class IoAwaiter : public WaitNode {
public:
    IoAwaiter() = default;
    IoAwaiter(const IoAwaiter&) = delete;
    IoAwaiter& operator=(const IoAwaiter&) = delete;

    IoOperation op;
    long result = 0;
    bool return_errors = false;  // await_resume returns -errno instead of throwing
    // The operation's result belongs to the caller and would be lost (bytes taken from the
    // kernel, an accepted connection): when it completed just as the task was cancelled, it is
    // returned, and the cancellation waits for the task's next await (Trio's rule: a cancelled
    // operation did not happen).
    bool keep_completed = false;

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h);
    // The syscall's result (>= 0); throws CancelledError, or std::system_error for -errno.
    long await_resume();

    void on_cancel() override;

protected:
    // What a completed result means when the awaiting task was cancelled meanwhile (an
    // accepted connection must not leak, received bytes may belong to a buffer).
    virtual void completed_while_cancelled(long r) noexcept;
    // Told of the result as the backend completes the operation, before the task resumes (other
    // tasks woken in the same poll may run first).
    virtual void completed(long) noexcept {}

private:
    static void on_complete(IoOperation* op, long r) noexcept;
    IoBackend* backend_ = nullptr;
    bool cancel_sent_ = false;
    bool completed_ = false;
};

}  // namespace corio::detail
