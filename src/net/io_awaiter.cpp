#include "corio/detail/io_awaiter.hpp"

#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "corio/detail/task_base.hpp"
#include "corio/loop.hpp"

namespace corio::detail {

bool IoAwaiter::await_suspend(std::coroutine_handle<> h) {
    if (!suspend(h)) return true;  // woken already, to take a pending cancellation
    backend_ = &task->loop()->backend();
    op.complete = &IoAwaiter::on_complete;
    op.user = this;
    try {
        backend_->submit(op);  // epoll refuses a closed fd here (EBADF)
    } catch (...) {
        task->suspend_failed(*this);
        throw;
    }
    return true;
}

void IoAwaiter::on_complete(IoOperation* op, long r) noexcept {
    auto* self = static_cast<IoAwaiter*>(op->user);
    self->result = r;
    self->completed_ = true;
    self->completed(r);
    self->wake();
}

void IoAwaiter::on_cancel() {
    if (woken && !cancelled) late_cancel = true;
    cancelled = true;
    if (woken || cancel_sent_) return;
    try {
        backend_->cancel(op);  // the completion (-ECANCELED, or the real result) wakes us
        cancel_sent_ = true;
    } catch (...) {
        // The backend could not ask (it keeps a cancel that finds its ring full for its next
        // poll, so this is a ring it may not use from here): the operation completes by itself,
        // the cancellation is thrown then, and a later cancel() asks again.
    }
}

void IoAwaiter::completed_while_cancelled(long r) noexcept {
    if (r >= 0 && op.kind == IoOperation::Kind::Accept) ::close(int(r));
}

long IoAwaiter::await_resume() {
    if (cancelled) {
        if (completed_ && result >= 0 && keep_completed) {
            if (task->cancelling() > 0) task->defer_cancel();  // unless taken back meanwhile
            return result;
        }
        if (result >= 0 && backend_) completed_while_cancelled(result);
        throw_if_cancelled();
    }
    if (result < 0 && !return_errors) throw std::system_error(int(-result), std::generic_category());
    return result;
}

}  // namespace corio::detail
