// asyncio.wait, as_completed and shield.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <variant>
#include <vector>

#include "corio/clock.hpp"
#include "corio/coro.hpp"
#include "corio/detail/awaitable_traits.hpp"
#include "corio/detail/task_set_waiter.hpp"
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

// as_completed's iterator: the tasks in the order they complete. next() returns the next one's
// result, or throws its exception, and the iteration goes on after a failure (asyncio's plain
// iterator, whose awaitables each raise their own); next_task() returns the task itself
// (asyncio's async iterator). Once the timeout has passed, the calls throw TimeoutError once for
// each task not returned yet, then return std::nullopt; those tasks are never cancelled. The
// deadline is noticed while a call waits: a task that finished after it, while no call was
// waiting, is still returned (asyncio's timer drops it). A copy iterates the same sequence.
template <class T>
class AsCompleted {
public:
    using value_type = detail::gathered_t<T>;

    AsCompleted(std::vector<Task<T>> tasks, std::optional<Clock::time_point> deadline)
        : state_(std::make_shared<State>(std::move(tasks), deadline)) {}

    // The next result in completion order; std::nullopt once every task has been returned.
    Coro<std::optional<value_type>> next() { return next_result(state_); }
    // The next task to complete (done); std::nullopt once every task has been returned.
    Coro<std::optional<Task<T>>> next_task() { return take_next(state_); }

private:
    struct State {
        State(std::vector<Task<T>> t, std::optional<Clock::time_point> d) : pending(std::move(t)), deadline(d) {}
        std::vector<Task<T>> pending;  // not returned yet, and not known to be done
        std::vector<Task<T>> ready;    // done, in completion order, not returned yet
        std::optional<Clock::time_point> deadline;
        std::size_t timeouts_owed = 0;  // once the deadline passed: one per task not returned
        bool waiting = false;
    };

    struct Waiting {
        explicit Waiting(State& s) : state(s) {
            if (s.waiting) throw std::logic_error("as_completed: next() called while another next() is waiting");
            s.waiting = true;
        }
        ~Waiting() { state.waiting = false; }
        Waiting(const Waiting&) = delete;
        Waiting& operator=(const Waiting&) = delete;
        State& state;
    };

    static Coro<std::optional<Task<T>>> take_next(std::shared_ptr<State> s) {
        if (s->ready.empty() && s->timeouts_owed > 0) {
            --s->timeouts_owed;
            throw TimeoutError();
        }
        if (s->ready.empty() && !s->pending.empty()) {
            Waiting waiting(*s);
            std::vector<detail::FutureBase*> order;
            if (std::none_of(s->pending.begin(), s->pending.end(), [](const Task<T>& t) { return t.done(); })) {
                std::vector<detail::FutureBase*> states;
                for (auto& t : s->pending) states.push_back(t.state());
                detail::TaskSetWaiter waiter(std::move(states), detail::TaskSetWaiter::Until::FirstDone, s->deadline);
                co_await waiter;
                order = waiter.completion_order();
            }
            // Those seen completing, in that order; then any that were done before we waited.
            for (auto& t : s->pending)
                if (t.done() && std::find(order.begin(), order.end(), t.state()) == order.end())
                    order.push_back(t.state());
            if (order.empty()) {  // the deadline passed: the rest are owed a TimeoutError each
                s->timeouts_owed = s->pending.size() - 1;
                s->pending.clear();
                throw TimeoutError();
            }
            for (detail::FutureBase* f : order)
                for (auto& t : s->pending)
                    if (t.state() == f) s->ready.push_back(t);
            std::erase_if(s->pending, [](const Task<T>& t) { return t.done(); });
        }
        if (s->ready.empty()) co_return std::nullopt;
        Task<T> next = std::move(s->ready.front());
        s->ready.erase(s->ready.begin());
        co_return next;
    }

    static Coro<std::optional<value_type>> next_result(std::shared_ptr<State> s) {
        Coro<std::optional<Task<T>>> taking = take_next(s);
        std::optional<Task<T>> task = co_await std::move(taking);
        if (!task) co_return std::nullopt;
        if constexpr (std::is_void_v<T>) {
            co_await std::move(*task);
            co_return std::monostate{};
        } else {
            T value = co_await std::move(*task);
            co_return std::optional<value_type>(std::move(value));
        }
    }

    std::shared_ptr<State> state_;
};

// The tasks of `aws` in completion order (see AsCompleted). As in asyncio, the Coros become
// tasks and the timeout starts at the call, not at the first next().
template <class A>
    requires detail::TaskLike<A>
AsCompleted<detail::task_value_t<A>> as_completed(std::vector<A> aws,
                                                  std::optional<Clock::duration> timeout = std::nullopt) {
    using T = detail::task_value_t<A>;
    std::vector<Task<T>> pending;
    for (auto& a : aws) pending.push_back(detail::to_task(std::move(a)));
    detail::drop_repeated_tasks(pending);
    std::optional<Clock::time_point> deadline;
    if (timeout) deadline = get_running_loop().time() + *timeout;
    return AsCompleted<T>(std::move(pending), deadline);
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
