// Tasks: asyncio.create_task, Task, current_task, all_tasks.
//
// The loop keeps every scheduled task alive until it finishes, so a dropped handle never
// loses a task (asyncio keeps only weak references; corio differs on purpose).
#pragma once

#include <source_location>
#include <string>
#include <vector>

#include "corio/coro.hpp"
#include "corio/detail/task_base.hpp"
#include "corio/loop.hpp"

namespace corio {

// A handle to a task whatever its result type: what current_task() and all_tasks() return.
class AnyTask {
public:
    AnyTask() = default;
    explicit AnyTask(detail::TaskBase* t) noexcept : ref_(t) {
        if (t) t->add_ref();
    }

    explicit operator bool() const noexcept { return bool(ref_); }
    bool cancel(std::string message = {}) { return ref_->cancel(std::move(message)); }
    bool cancelled() const noexcept { return ref_->cancelled(); }
    bool done() const noexcept { return ref_->done(); }
    int cancelling() const noexcept { return ref_->cancelling(); }
    int uncancel() noexcept { return ref_->uncancel(); }
    std::exception_ptr exception() const { return ref_->exception(); }
    std::string name() const { return ref_->name(); }
    void set_name(std::string name) { ref_->set_name(std::move(name)); }
    const std::source_location& created_at() const noexcept { return ref_->created_at(); }
    // f(task), as asyncio calls it, or f(), is called (through call_soon) once the task is done.
    // The handle f gets is made then: f need not capture the task (nor keep it alive).
    template <class F>
    void add_done_callback(F f) {
        if constexpr (std::is_invocable_v<F&, AnyTask&>) {
            ref_->add_done_callback(detail::BasicCallback<detail::FutureBase&>([f = std::move(f)](detail::FutureBase& s) mutable {
                AnyTask done(static_cast<detail::TaskBase*>(&s));
                f(done);
            }));
        } else {
            static_assert(std::is_invocable_v<F&>, "add_done_callback(f): f must take the task, or nothing");
            ref_->add_done_callback(detail::Callback(std::move(f)));
        }
    }

    detail::TaskBase* state() const noexcept { return ref_.get(); }
    friend bool operator==(const AnyTask& a, const AnyTask& b) noexcept { return a.ref_ == b.ref_; }

protected:
    struct Adopt {};
    AnyTask(detail::TaskBase* t, Adopt) noexcept : ref_(t) {}
    detail::StateRef<detail::TaskBase> ref_;
};

template <class T = void>
class Task : public AnyTask {
public:
    using value_type = T;
    Task() = default;

    // The result; throws the task's exception, CancelledError, or InvalidStateError if pending.
    decltype(auto) result() const {
        if (!done()) throw InvalidStateError("Result is not ready.");
        if constexpr (std::is_void_v<T>) {
            typed()->rethrow_if_failed();
        } else {
            typed()->rethrow_if_failed();
            if constexpr (!std::is_copy_constructible_v<T>) typed()->check_move_only_result();
            return static_cast<const T&>(typed()->value());
        }
    }

    using Awaiter = detail::FutureAwaiter<T, detail::TaskState<T>>;
    Awaiter operator co_await() const& noexcept { return Awaiter(typed(), false); }
    Awaiter operator co_await() && noexcept { return Awaiter(typed(), true); }

    // f(task) with this typed handle (so f can call task.result()), or f().
    template <class F>
    void add_done_callback(F f) {
        if constexpr (std::is_invocable_v<F&, Task&>) {
            ref_->add_done_callback(detail::BasicCallback<detail::FutureBase&>([f = std::move(f)](detail::FutureBase& s) mutable {
                auto* typed = static_cast<detail::TaskState<T>*>(static_cast<detail::TaskBase*>(&s));
                typed->add_ref();
                Task done(typed);
                f(done);
            }));
        } else {
            AnyTask::add_done_callback(std::move(f));
        }
    }

    detail::TaskState<T>* typed() const noexcept { return static_cast<detail::TaskState<T>*>(state()); }

    static Task adopt(detail::TaskState<T>* s) noexcept { return Task(s); }

private:
    explicit Task(detail::TaskState<T>* s) noexcept : AnyTask(s, Adopt{}) {}
};

namespace detail {
template <class T>
Task<T> spawn(EventLoop& loop, Coro<T> coro, std::string&& name, std::source_location where) {
    loop.check_open();
    if (coro && coro.handle().promise().started) throw std::logic_error("corio: a Coro can be awaited only once");
    auto h = coro.release();
    if (!h) throw std::invalid_argument("corio::create_task: empty Coro");
    auto* s = new TaskState<T>(loop, h, std::move(name), where);
    loop.register_task(*s);
    return Task<T>::adopt(s);
}
}  // namespace detail

// Schedules `coro` on the running loop at once (its first step runs on the next tick).
template <class T>
[[nodiscard("the loop keeps the task alive, but keep the handle to await it or see its failure")]]
Task<T> create_task(Coro<T> coro, std::string name = {},
                    std::source_location where = std::source_location::current()) {
    return detail::spawn(get_running_loop(), std::move(coro), std::move(name), where);
}

// The running task, or an empty handle outside any task.
AnyTask current_task();
// The tasks of the running loop that are not done.
std::vector<AnyTask> all_tasks();

namespace detail {
// The running task; throws std::logic_error outside a task.
TaskBase& require_task();
}  // namespace detail

}  // namespace corio
