// asyncio.wait, as_completed and shield.
#pragma once

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "corio/clock.hpp"
#include "corio/coro.hpp"
#include "corio/detail/awaitable_traits.hpp"
#include "corio/detail/task_set_waiter.hpp"
#include "corio/generator.hpp"
#include "corio/task.hpp"

namespace corio {

enum class ReturnWhen { FirstCompleted, FirstException, AllCompleted };

template <class T>
struct WaitResult {
    std::vector<Task<T>> done;
    std::vector<Task<T>> pending;
};

namespace detail {
inline TaskSetWaiter::Until until_of(ReturnWhen rw) {
    switch (rw) {
        case ReturnWhen::FirstCompleted: return TaskSetWaiter::Until::FirstDone;
        case ReturnWhen::FirstException: return TaskSetWaiter::Until::FirstException;
        case ReturnWhen::AllCompleted: break;
    }
    return TaskSetWaiter::Until::AllDone;
}

// asyncio's wait() and as_completed() take their awaitables as a set: a task given twice is
// waited for, and reported, once (first place kept).
template <class T>
void drop_repeated_tasks(std::vector<Task<T>>& tasks) {
    std::vector<const FutureBase*> seen;
    std::erase_if(tasks, [&seen](const Task<T>& t) {
        if (std::find(seen.begin(), seen.end(), t.state()) != seen.end()) return true;
        seen.push_back(t.state());
        return false;
    });
}

template <class T>
Coro<WaitResult<T>> wait_tasks(std::vector<Task<T>> tasks, std::optional<Clock::duration> timeout, ReturnWhen rw) {
    if (tasks.empty()) throw std::invalid_argument("wait(): the set of tasks is empty");
    drop_repeated_tasks(tasks);
    std::vector<FutureBase*> states;
    for (auto& t : tasks) states.push_back(t.state());
    std::optional<Clock::time_point> deadline;
    if (timeout) deadline = get_running_loop().time() + *timeout;
    TaskSetWaiter waiter(std::move(states), until_of(rw), deadline);
    co_await waiter;
    WaitResult<T> out;
    for (auto& t : tasks) (t.done() ? out.done : out.pending).push_back(std::move(t));
    co_return out;
}
}  // namespace detail

// (done, pending) once `return_when` holds or the timeout passes. Never raises TimeoutError
// and never cancels anything: on timeout the unfinished ones are simply in `pending`.
template <class A>
    requires detail::TaskLike<A>
Coro<WaitResult<detail::task_value_t<A>>> wait(std::vector<A> aws, std::optional<Clock::duration> timeout = std::nullopt,
                                               ReturnWhen return_when = ReturnWhen::AllCompleted) {
    std::vector<Task<detail::task_value_t<A>>> tasks;
    for (auto& a : aws) tasks.push_back(detail::to_task(std::move(a)));
    return detail::wait_tasks(std::move(tasks), timeout, return_when);
}

namespace detail {
template <class T>
AsyncGenerator<gathered_t<T>> as_completed_tasks(std::vector<Task<T>> pending, std::optional<Clock::time_point> deadline) {
    while (!pending.empty()) {
        std::vector<FutureBase*> order;
        {
            std::vector<FutureBase*> states;
            for (auto& t : pending) states.push_back(t.state());
            TaskSetWaiter waiter(std::move(states), TaskSetWaiter::Until::FirstDone, deadline);
            co_await waiter;
            order = waiter.completion_order();
        }
        // Those seen completing, in that order; then any that were done before we waited.
        for (auto& t : pending)
            if (t.done() && std::find(order.begin(), order.end(), t.state()) == order.end())
                order.push_back(t.state());
        if (order.empty()) throw TimeoutError();
        std::vector<Task<T>> ready;
        for (FutureBase* f : order)
            for (auto& t : pending)
                if (t.state() == f) ready.push_back(t);
        std::erase_if(pending, [](const Task<T>& t) { return t.done(); });
        for (auto& t : ready) {
            if constexpr (std::is_void_v<T>) {
                co_await t;
                co_yield std::monostate{};
            } else {
                T value = co_await t;
                co_yield std::move(value);
            }
        }
    }
}
}  // namespace detail

// Results in completion order; a failure (or TimeoutError once the timeout passes) is thrown
// from next(). The remaining tasks are not cancelled on timeout. As in asyncio, the Coros become
// tasks and the timeout starts at the call, not at the first next() (a generator's body would
// only start there, so this is a plain function that hands the tasks to one).
template <class A>
    requires detail::TaskLike<A>
AsyncGenerator<detail::gathered_t<detail::task_value_t<A>>> as_completed(
    std::vector<A> aws, std::optional<Clock::duration> timeout = std::nullopt) {
    using T = detail::task_value_t<A>;
    std::vector<Task<T>> pending;
    for (auto& a : aws) pending.push_back(detail::to_task(std::move(a)));
    detail::drop_repeated_tasks(pending);
    std::optional<Clock::time_point> deadline;
    if (timeout) deadline = get_running_loop().time() + *timeout;
    return detail::as_completed_tasks<T>(std::move(pending), deadline);
}

namespace detail {
template <class T>
struct ShieldAwaiter final : WaitNode, CompletionWaiter {
    explicit ShieldAwaiter(Task<T> t) : inner(std::move(t)) {}
    Task<T> inner;
    bool await_ready() const noexcept { return inner.done(); }
    bool await_suspend(std::coroutine_handle<> h) {
        if (!suspend(h)) return false;
        inner.state()->add_waiter(*this);
        return true;
    }
    T await_resume() {
        throw_if_cancelled();
        return detail::take_result<T>(*inner.typed(), false);
    }
    void on_future_done(FutureBase&) override { wake(); }
    // The default on_cancel: stop waiting at once. The inner task runs on (the loop keeps it).
    void detach() noexcept override { inner.state()->remove_waiter(*this); }
    void collect_awaited(std::vector<const FutureBase*>& out) const override { out.push_back(inner.state()); }
};
}  // namespace detail

// asyncio.shield: cancelling the awaiter does not cancel the inner work.
template <class T>
detail::ShieldAwaiter<T> shield(Task<T> inner) {
    return detail::ShieldAwaiter<T>(std::move(inner));
}
template <class T>
detail::ShieldAwaiter<T> shield(Coro<T> inner) {
    return detail::ShieldAwaiter<T>(detail::to_task(std::move(inner)));
}

}  // namespace corio
