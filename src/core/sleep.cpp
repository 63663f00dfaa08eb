#include "corio/sleep.hpp"

#include "corio/detail/task_base.hpp"

namespace corio {

namespace detail {

void SleepAwaiter::on_timer(TimerNode* t) noexcept { static_cast<SleepAwaiter*>(t)->wake_from_timer(); }

bool SleepAwaiter::await_suspend(std::coroutine_handle<> h) {
    if (!suspend(h)) {  // woken already, to take a pending cancellation
        // asyncio's bare yield leaves the request pending (_must_cancel) until the next step,
        // so uncancel() back to zero before then drops it (3.13); a real sleep's future was
        // cancelled at once, which nothing takes back.
        if (!fire) late_cancel = true;
        return true;
    }
    if (!fire) {
        wake();  // no timer: asyncio's bare yield, back on the next tick
    } else {
        try {
            task->loop()->add_timer(*this);
        } catch (...) {
            task->suspend_failed(*this);
            throw;
        }
    }
    return true;
}

void SleepAwaiter::detach() noexcept {
    if (armed()) task->loop()->remove_timer(*this);
}

}  // namespace detail

detail::SleepAwaiter sleep(Clock::duration delay) {
    if (delay <= Clock::duration::zero()) return detail::SleepAwaiter(Clock::time_point{}, true);
    return detail::SleepAwaiter(detail::deadline_after(get_running_loop().time(), delay), false);
}

detail::SleepAwaiter sleep_until(Clock::time_point deadline) {
    EventLoop& loop = get_running_loop();
    if (deadline <= loop.time()) return detail::SleepAwaiter(Clock::time_point{}, true);
    return detail::SleepAwaiter(deadline, false);
}

}  // namespace corio
