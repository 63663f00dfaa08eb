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
    // Waiters left on a dying lock can never be woken; unlink them so that their frames,
    // if ever destroyed, do not touch this list.
    while (waiters_.pop_front()) {
    }
}

void Lock::release() {
    if (!locked_) throw std::logic_error("Lock is not acquired.");
    if (auto* next = static_cast<Awaiter*>(waiters_.pop_front())) {
        next->granted_ = true;  // stays locked: ownership moves to `next`
        next->wake();
    } else {
        locked_ = false;
    }
}

}  // namespace corio
