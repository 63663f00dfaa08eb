// asyncio.sleep: suspend the task for a duration; sleep(0) yields for exactly one tick.
#pragma once

#include <coroutine>

#include "corio/clock.hpp"
#include "corio/detail/wait_node.hpp"
#include "corio/loop.hpp"

namespace corio {

namespace detail {
class SleepAwaiter final : public WaitNode, public TimerNode {
public:
    // A bare yield has no timer to fire (fire stays null).
    explicit SleepAwaiter(Clock::time_point when, bool just_yield) noexcept {
        this->when = when;
        if (!just_yield) this->fire = &SleepAwaiter::on_timer;
    }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h);
    void await_resume() const { throw_if_cancelled(); }
    void detach() noexcept override;

private:
    static void on_timer(TimerNode* t) noexcept;
};
}  // namespace detail

// co_await corio::sleep(1s). A zero or negative delay yields for exactly one tick.
detail::SleepAwaiter sleep(Clock::duration delay);
// Sleeps until the loop's clock reaches `deadline`.
detail::SleepAwaiter sleep_until(Clock::time_point deadline);

}  // namespace corio
