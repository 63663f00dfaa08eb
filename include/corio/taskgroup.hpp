// asyncio.TaskGroup: structured concurrency.
//
//   co_await corio::task_group([&](corio::TaskGroup& tg) -> corio::Coro<> {
//       a = tg.create_task(fetch("a"));
//       b = tg.create_task(fetch("b"));
//       co_return;
//   });  // every child is done here
//
// When a child fails, the other children and the body are cancelled; once all have finished,
// ExceptionGroup holds every failure that is not a cancellation (the body's own last).
// Cancelling the parent cancels every child and the parent sees CancelledError. The group
// recognises the cancellation it caused itself and only that one (asyncio 3.13's cancelling()
// rules), so an outer cancel or timeout is never swallowed.
#pragma once

#include <exception>
#include <source_location>
#include <string>
#include <type_traits>
#include <vector>

#include "corio/coro.hpp"
#include "corio/task.hpp"

namespace corio {

class TaskGroup final : private detail::TaskOwner {
public:
    explicit TaskGroup(detail::TaskBase& parent) noexcept : parent_(&parent), entry_level_(parent.cancelling()) {}
    ~TaskGroup();
    TaskGroup(const TaskGroup&) = delete;
    TaskGroup& operator=(const TaskGroup&) = delete;

    template <class T>
    Task<T> create_task(Coro<T> coro, std::string name = {},
                        std::source_location where = std::source_location::current()) {
        if (const char* why = refusal()) {
            // Like asyncio, close the refused coroutine so it is not reported as never awaited.
            if (auto h = coro.release()) h.destroy();
            throw std::logic_error(why);
        }
        Task<T> t = detail::spawn(*parent_->loop(), std::move(coro), std::move(name), where);
        adopt(*t.state());
        return t;
    }

    // Cancels the children and the body, and ends the group without an error (asyncio 3.15).
    void cancel();

    // The end of `async with`: waits for the children, then raises what the group must.
    Coro<> exit(std::exception_ptr body_error);

private:
    struct EmptyWaiter;
    const char* refusal() const noexcept {
        return finished_ ? "TaskGroup is finished" : aborting_ ? "TaskGroup is shutting down" : nullptr;
    }
    void adopt(detail::TaskBase& child);
    void on_child_done(detail::TaskBase& child) override;
    void forget_child(detail::TaskBase& child) noexcept override;
    void abort();
    std::exception_ptr first_interrupt(std::size_t failed_before_exit, const std::exception_ptr& body_error) const;

    detail::TaskBase* parent_;
    detail::IntrusiveList<detail::TaskExtras, detail::GroupTag> children_;  // through each child's extras
    std::vector<std::exception_ptr> errors_;
    EmptyWaiter* exit_waiter_ = nullptr;
    bool aborting_ = false;
    bool exiting_ = false;
    bool finished_ = false;
    bool parent_cancel_requested_ = false;
    int entry_level_;  // the parent's cancel requests before the group began: not the group's
};

// async with TaskGroup() as tg: <body>
template <class F>
Coro<> task_group(F body) {
    static_assert(std::is_same_v<std::invoke_result_t<F&, TaskGroup&>, Coro<>>,
                  "task_group: the body must be a coroutine taking TaskGroup& and returning corio::Coro<>: "
                  "[&](corio::TaskGroup& tg) -> corio::Coro<> { ...; co_return; }");
    TaskGroup tg(detail::require_task());
    std::exception_ptr error;
    try {
        Coro<> inner = body(tg);
        co_await std::move(inner);
    } catch (...) {
        error = std::current_exception();
    }
    Coro<> exiting = tg.exit(error);
    co_await std::move(exiting);
}

}  // namespace corio
