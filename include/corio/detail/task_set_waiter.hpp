// Waits for a set of futures/tasks until a condition holds (all done, first done, first
// failure) or a deadline passes. The building block of gather, wait and as_completed.
#pragma once

#include <coroutine>
#include <optional>
#include <string>
#include <vector>

#include "corio/clock.hpp"
#include "corio/coro.hpp"
#include "corio/detail/future_base.hpp"
#include "corio/detail/wait_node.hpp"
#include "corio/loop.hpp"

namespace corio::detail {

class TaskSetWaiter final : public WaitNode, private TimerNode {
public:
    enum class Until {
        AllDone,
        FirstDone,
        FirstException,  // a failure other than a cancellation (asyncio's FIRST_EXCEPTION)
        FirstFailure,    // a failure or a cancellation (gather without return_exceptions)
    };

    TaskSetWaiter(std::vector<FutureBase*> futures, Until until,
                  std::optional<Clock::time_point> deadline = std::nullopt);
    TaskSetWaiter(const TaskSetWaiter&) = delete;
    ~TaskSetWaiter();

    bool await_ready();
    bool await_suspend(std::coroutine_handle<> h);
    void await_resume() const { throw_if_cancelled(); }

    // Futures that completed while we waited, in completion order.
    const std::vector<FutureBase*>& completion_order() const noexcept { return completed_; }
    bool timed_out() const noexcept { return timed_out_; }
    // gather's wait: a cancel of the waiting task is passed on to the unfinished futures at
    // once, and the wait goes on until they end (asyncio's _GatheringFuture.cancel, rules T4
    // and G7); cancel_passed_on() then tells the caller to throw CancelledError (with the first
    // request's message, when no future ended with a CancelledError of its own to throw).
    void pass_cancel_on_to_futures() noexcept { pass_cancel_ = true; }
    bool cancel_passed_on() const noexcept { return cancel_passed_; }
    const std::string& passed_cancel_message() const noexcept { return passed_message_; }
    void collect_awaited(std::vector<const FutureBase*>& out) const override {
        for (FutureBase* f : futures_)
            if (!f->done()) out.push_back(f);
    }

private:
    struct Listener final : CompletionWaiter {
        TaskSetWaiter* owner = nullptr;
        void on_future_done(FutureBase& f) override { owner->child_done(f); }
    };
    void child_done(FutureBase& f);
    bool satisfied() const noexcept;
    bool satisfied_by(const FutureBase& f) const noexcept;
    void detach() noexcept override;
    void on_cancel() override;
    static void fire(TimerNode* t) noexcept;

    std::vector<FutureBase*> futures_;
    std::vector<Listener> listeners_;
    std::vector<FutureBase*> completed_;
    Until until_;
    std::optional<Clock::time_point> deadline_;
    EventLoop* loop_ = nullptr;
    std::size_t done_count_ = 0;  // kept as children finish: checking stays O(1) per completion
    bool timed_out_ = false;
    bool pass_cancel_ = false;
    bool cancel_passed_ = false;
    std::string passed_message_;
};

// Waits until every future is done. Cancellations that arrive meanwhile do not cut the wait
// short (the caller is already cleaning up, having cancelled the futures): each is passed on
// to the futures not yet done; the result says whether any arrived.
Coro<bool> wait_all_absorbing(std::vector<FutureBase*> futures);

}  // namespace corio::detail
