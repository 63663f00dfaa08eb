// The untyped part of a task: its coroutine frame, where it is suspended, its cancellation
// requests, and the links that the loop (all_tasks) and a TaskGroup keep it on.
#pragma once

#include <coroutine>
#include <cstdint>
#include <memory>
#include <source_location>
#include <string>

#include "corio/clock.hpp"
#include "corio/coro.hpp"
#include "corio/detail/future_base.hpp"
#include "corio/detail/promise_base.hpp"
#include "corio/detail/wait_node.hpp"

namespace corio::detail {

struct AllTasksTag;
struct GroupTag;
class TaskBase;

// What debug mode and live introspection know about a task beyond its state.
struct TaskStats {
    Clock::time_point created{};
    Clock::duration busy{};  // time its steps held the loop
    std::uint64_t steps = 0;
};

// Who owns a task's outcome (a TaskGroup): told inline when a child completes.
struct TaskOwner {
    virtual void on_child_done(TaskBase& child) = 0;

protected:
    ~TaskOwner() = default;
};

// What few tasks need: a name given by the user, a cancel message, statistics. Out of line, so
// that a million plain tasks do not carry them.
struct TaskExtras {
    std::string name;  // empty: "Task-<id>"
    std::string cancel_message;
    std::unique_ptr<TaskStats> stats;  // only when the loop keeps statistics (debug, introspection)
};

class TaskBase : public FutureBase, public ListHook<AllTasksTag>, public ListHook<GroupTag> {
public:
    TaskBase(EventLoop& loop, std::coroutine_handle<> frame, std::string name, std::source_location created);

    bool cancel(std::string message) override;
    int cancelling() const noexcept { return int(cancel_requests_); }
    int uncancel() noexcept;
    const std::string& cancel_message() const noexcept;

    std::string name() const;
    void set_name(std::string name) { extras().name = std::move(name); }
    std::uint64_t id() const noexcept { return id_; }
    const std::source_location& created_at() const noexcept { return created_; }
    // The outermost frame, while it exists (for the call graph).
    PromiseBase* root_promise() const noexcept { return root_ ? &root_promise_of() : nullptr; }
    WaitNode* waiting_on() const noexcept { return waiting_on_; }
    const TaskStats* stats() const noexcept { return extras_ ? extras_->stats.get() : nullptr; }
    bool started() const noexcept { return stepped_; }
    std::string describe() const override;

    // Called by WaitNode.
    void suspended_at(WaitNode& node, std::coroutine_handle<> h) noexcept {
        waiting_on_ = &node;
        resume_ = h;
    }
    void about_to_suspend();
    bool consume_pending_cancel() noexcept {
        if (!must_cancel_) return false;
        must_cancel_ = false;
        return true;
    }
    void schedule() noexcept;

    void set_owner(TaskOwner* owner) noexcept { owner_ = owner; }
    TaskOwner* owner() const noexcept { return owner_; }

    // Loop shutdown: the frame of a task that can never finish is destroyed.
    void abandon() noexcept;

protected:
    ~TaskBase() override;
    // The promise of root_ (its type is known only to the typed state).
    virtual PromiseBase& root_promise_of() const noexcept = 0;
    // Moves the finished frame's outcome into the typed state.
    virtual void take_outcome() = 0;

    std::coroutine_handle<> root_;

private:
    static void step_thunk(void* self) noexcept { static_cast<TaskBase*>(self)->step(); }
    void step() noexcept;
    void complete() noexcept;
    void finish_task(State s, std::exception_ptr e) noexcept;
    void report_swallowed_cancel() noexcept;
    TaskExtras& extras();

    std::coroutine_handle<> resume_;
    WaitNode* waiting_on_ = nullptr;
    TaskOwner* owner_ = nullptr;
    std::unique_ptr<TaskExtras> extras_;
    std::source_location created_;
    std::uint64_t id_ = 0;
    std::uint32_t cancel_requests_ = 0;
    bool must_cancel_ = false;
    bool forwarding_cancel_ = false;
    bool stepped_ = false;  // its body has begun
};

template <class T>
class TaskState final : public TaskBase, public ResultSlot<T> {
public:
    using Promise = typename Coro<T>::promise_type;
    TaskState(EventLoop& loop, std::coroutine_handle<Promise> frame, std::string name, std::source_location created)
        : TaskBase(loop, frame, std::move(name), created) {}
    ~TaskState() override {
        if (state() == State::Succeeded) this->destroy();
    }

private:
    Promise& promise() const noexcept { return std::coroutine_handle<Promise>::from_address(root_.address()).promise(); }
    PromiseBase& root_promise_of() const noexcept override { return promise(); }
    void take_outcome() override {
        if constexpr (!std::is_void_v<T>) this->emplace(promise().take_value());
    }
};

// Awaits a FutureBase-derived state (a Task or a Future). Cancelling the awaiting task
// cancels the awaited one and keeps waiting for it, as asyncio does (test_cancel_awaited_task):
// if the awaited task swallows the cancel and returns, the awaiter gets that value.
TaskBase& require_task();

template <class T, class S>
struct FutureAwaiter final : WaitNode, CompletionWaiter {
    explicit FutureAwaiter(S* s, bool move_out) noexcept : state(s), move_out(move_out) {}
    S* state;
    bool move_out;

    bool await_ready() const noexcept { return state->done(); }
    bool await_suspend(std::coroutine_handle<> h) {
        TaskBase& me = require_task();
        if (static_cast<FutureBase*>(state) == static_cast<FutureBase*>(&me))
            throw std::logic_error("Task cannot await on itself");
        me.about_to_suspend();
        if (me.consume_pending_cancel()) {
            // A cancellation already requested is delivered by cancelling what we await, and we
            // wait for it to finish (asyncio's T6, bpo-34872): a child task is not left behind.
            task = &me;
            me.suspended_at(*this, h);
            state->add_waiter(*this);
            on_cancel();
            return true;
        }
        task = &me;
        me.suspended_at(*this, h);
        state->add_waiter(*this);
        return true;
    }
    T await_resume() {
        if (cancelled) {
            state->remove_waiter(*this);
            throw_if_cancelled();
        }
        // `co_await std::move(task)` moves the result out only if no other handle can see it.
        return take_result<T>(*state, move_out && state->unique());
    }
    void on_future_done(FutureBase&) override { wake(); }
    void on_cancel() override;
    void detach() noexcept override { state->remove_waiter(*this); }
    void collect_awaited(std::vector<const FutureBase*>& out) const override { out.push_back(state); }
};

template <class T, class S>
void FutureAwaiter<T, S>::on_cancel() {
    if (!woken && !cancelled && state->cancel(task->cancel_message())) return;
    WaitNode::on_cancel();
}

}  // namespace corio::detail
