#include "corio/lock.hpp"

#include <stdexcept>

#include "corio/detail/task_base.hpp"
#include "corio/loop.hpp"

namespace corio {

namespace detail {
void report_release_error(std::exception_ptr error) noexcept {
    EventLoop* loop = running_loop();
    if (!loop) std::terminate();  // no handler to tell: as a throwing destructor would
    ExceptionContext c;
    c.message = "a guard could not release what it held";
    c.exception = std::move(error);
    if (TaskBase* t = loop->current_task()) c.task_name = t->name();
    loop->call_exception_handler(c);
}
}  // namespace detail

Lock::~Lock() {
    // Waiters left on a dying lock can never be woken; they are told it is gone, so that a
    // cancellation (or their frame's destruction) does not touch it.
    while (auto* w = static_cast<Awaiter*>(waiters_.pop_front())) w->lock_ = nullptr;
    if (handed_to_) handed_to_->lock_ = nullptr;
}

void Lock::release() {
    if (!locked_ || handed_to_) throw std::logic_error("Lock is not acquired.");
    if (auto* next = static_cast<Awaiter*>(waiters_.pop_front())) {
        handed_to_ = next;  // stays locked: ownership moves to `next`
        next->wake();
    } else {
        locked_ = false;
    }
}

Lock::Awaiter::~Awaiter() {
    if (!lock_) return;
    lock_->waiters_.remove(*this);
    if (lock_->handed_to_ == this) {
        // Handed the lock but never to run: passed on, as the guard it never got would have.
        lock_->handed_to_ = nullptr;
        lock_->release();
    }
}

LockGuard Lock::Awaiter::await_resume() {
    if (!lock_) {
        throw_if_cancelled();
        return LockGuard();
    }
    if (lock_->handed_to_ == this) {
        lock_->handed_to_ = nullptr;
        if (cancelled) lock_->release();  // handed over, but we will not run: pass it on
    }
    throw_if_cancelled();
    return LockGuard(*lock_);
}

}  // namespace corio
