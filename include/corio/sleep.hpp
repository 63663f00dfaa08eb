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
    explicit SleepAwaiter(Clock::time_point when, bool just_yield) noexcept : yield_(just_yield) { this->when = when; }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h);
    void await_resume() const { throw_if_cancelled(); }
    void detach() noexcept override;

private:
    bool yield_;
};
}  // namespace detail

// co_await corio::sleep(1s). A zero or negative delay yields for exactly one tick.
detail::SleepAwaiter sleep(Clock::duration delay);
// Sleeps until the loop's clock reaches `deadline`.
detail::SleepAwaiter sleep_until(Clock::time_point deadline);

}  // namespace corio
