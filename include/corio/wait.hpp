// asyncio.wait, as_completed and shield.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <unordered_set>
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
    std::unordered_set<const FutureBase*> seen;
    seen.reserve(tasks.size());
    std::erase_if(tasks, [&seen](const Task<T>& t) { return !seen.insert(t.state()).second; });
}

template <class T>
Coro<WaitResult<T>> wait_tasks(std::vector<Task<T>> tasks, std::optional<Clock::duration> timeout, ReturnWhen rw) {
    if (tasks.empty()) throw std::invalid_argument("wait(): the set of tasks is empty");
    drop_repeated_tasks(tasks);
    std::vector<FutureBase*> states;
    for (auto& t : tasks) states.push_back(t.state());
    std::optional<Clock::time_point> deadline;
    if (timeout) deadline = detail::deadline_after(get_running_loop().time(), *timeout);
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
// (asyncio's async iterator). The deadline is a loop timer armed at the call, as asyncio's: the
// tasks that completed before it come first, then each task still running at the deadline is one
// TimeoutError, then std::nullopt; those tasks are never cancelled. A copy iterates the same
// sequence.
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
    struct State;
    // One per task not done at the call, on its waiter list until it completes or the deadline
    // passes (asyncio's done-callbacks); `owner` is set exactly while it is linked.
    struct Listener final : detail::CompletionWaiter {
        State* owner = nullptr;
        std::size_t index = 0;
        void on_future_done(detail::FutureBase&) override { owner->completed(index); }
    };
    // The next() that waits for news (a completion, or the deadline).
    struct NewsAwaiter final : detail::WaitNode {
        explicit NewsAwaiter(State& s) noexcept : state(s) {}
        NewsAwaiter(const NewsAwaiter&) = delete;
        NewsAwaiter& operator=(const NewsAwaiter&) = delete;
        ~NewsAwaiter() { detach(); }
        State& state;
        bool await_ready() const noexcept { return state.has_news(); }
        bool await_suspend(std::coroutine_handle<> h) {
            if (!suspend(h)) return true;  // woken already, to take a pending cancellation
            state.waiter = this;
            return true;
        }
        void await_resume() {
            detach();
            throw_if_cancelled();
        }
        void detach() noexcept override {
            if (state.waiter == this) state.waiter = nullptr;
        }
        void collect_awaited(std::vector<const detail::FutureBase*>& out) const override {
            for (std::size_t i = 0; i < state.tasks.size(); ++i)
                if (state.listeners[i].owner) out.push_back(state.tasks[i].state());
        }
    };
    struct State final : detail::TimerNode {
        State(std::vector<Task<T>> t, std::optional<Clock::time_point> deadline)
            : tasks(std::move(t)), listeners(tasks.size()) {
            ready.reserve(tasks.size());  // completed() may not allocate
            for (std::size_t i = 0; i < tasks.size(); ++i)
                if (tasks[i].done()) ready.push_back(i);
            running = tasks.size() - ready.size();
            if (deadline && running > 0) {
                // Armed before any listener is linked: if it throws, nothing needs undoing.
                loop = &get_running_loop();
                when = *deadline;
                fire = &State::deadline_passed;
                loop->add_timer(*this);
            }
            for (std::size_t i = 0; i < tasks.size(); ++i) {
                if (tasks[i].done()) continue;
                listeners[i].owner = this;
                listeners[i].index = i;
                tasks[i].state()->add_waiter(listeners[i]);
            }
        }
        State(const State&) = delete;
        State& operator=(const State&) = delete;
        ~State() {
            unlink_running();
            if (armed()) loop->remove_timer(*this);  // a closed loop has disarmed it
        }

        bool has_news() const noexcept { return next_ready < ready.size() || timeouts_owed > 0 || running == 0; }
        void completed(std::size_t i) noexcept {
            listeners[i].owner = nullptr;  // the task's list has let it go
            ready.push_back(i);
            if (--running == 0 && armed()) loop->remove_timer(*this);
            wake_waiter();
        }
        static void deadline_passed(detail::TimerNode* t) noexcept {
            auto* s = static_cast<State*>(t);
            s->unlink_running();
            s->timeouts_owed = s->running;
            s->running = 0;
            s->wake_waiter();
        }
        void unlink_running() noexcept {
            for (std::size_t i = 0; i < listeners.size(); ++i) {
                if (!listeners[i].owner) continue;
                tasks[i].state()->remove_waiter(listeners[i]);
                listeners[i].owner = nullptr;
            }
        }
        void wake_waiter() noexcept {
            if (waiter && !waiter->woken) waiter->wake();
        }

        std::vector<Task<T>> tasks;  // a task's handle is moved out as it is returned
        std::vector<Listener> listeners;
        std::vector<std::size_t> ready;  // indices, in completion order
        std::size_t next_ready = 0;
        std::size_t running = 0;        // neither complete nor past the deadline
        std::size_t timeouts_owed = 0;  // one per task still running at the deadline
        EventLoop* loop = nullptr;
        NewsAwaiter* waiter = nullptr;
    };

    static Coro<std::optional<Task<T>>> take_next(std::shared_ptr<State> s) {
        if (s->waiter) throw std::logic_error("as_completed: next() called while another next() is waiting");
        for (;;) {
            if (s->next_ready < s->ready.size()) co_return std::move(s->tasks[s->ready[s->next_ready++]]);
            if (s->timeouts_owed > 0) {
                --s->timeouts_owed;
                throw TimeoutError();
            }
            if (s->running == 0) co_return std::nullopt;
            NewsAwaiter news(*s);
            co_await news;
        }
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
    if (timeout) deadline = detail::deadline_after(get_running_loop().time(), *timeout);
    return AsCompleted<T>(std::move(pending), deadline);
}

namespace detail {
template <class T>
struct ShieldAwaiter final : WaitNode, CompletionWaiter {
    explicit ShieldAwaiter(Task<T> t) : inner(std::move(t)) {}
    Task<T> inner;
    bool await_ready() const noexcept { return inner.done(); }
    bool await_suspend(std::coroutine_handle<> h) {
        if (!suspend(h)) return true;  // woken already, to take a pending cancellation
        inner.state()->add_waiter(*this);
        return true;
    }
    T await_resume() {
        throw_if_cancelled();
        return detail::take_result<T>(*inner.typed(), false);
    }
    void on_future_done(FutureBase&) override { wake(); }
    // As the default (stop waiting at once; the inner task runs on, the loop keeps it), but an
    // inner task already done, whose wake-up is on its way, counts as retrieved: asyncio's
    // shield has read its exception in its done callback, and the cancellation replaces it.
    void on_cancel() override {
        if (woken && inner.done()) inner.state()->mark_retrieved();
        WaitNode::on_cancel();
    }
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
