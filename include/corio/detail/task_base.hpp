// The untyped part of a task: its coroutine frame, where it is suspended, its cancellation
// requests, and the links that the loop (all_tasks) and a TaskGroup keep it on.
#pragma once

#include <algorithm>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
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

// Who owns a task's outcome (a TaskGroup): told on a later step when a child completes.
struct TaskOwner {
    virtual void on_child_done(TaskBase& child) = 0;
    // The closing loop abandons the child, which may be freed before the owner goes (a group
    // in an async generator's frame, destroyed after the tasks): the owner lets go of it.
    virtual void forget_child(TaskBase& child) noexcept = 0;

protected:
    ~TaskOwner() = default;
};

// What few tasks need: a name given by the user, a cancel message, statistics, the TaskGroup
// that owns it. Out of line, so that a million plain tasks do not carry them.
struct TaskExtras : ListHook<GroupTag>, Recycled {
    explicit TaskExtras(TaskBase& t) noexcept : task(t) {}
    TaskBase& task;
    TaskOwner* owner = nullptr;  // linked into the owner's list of children (GroupTag) while set
    std::string name;            // empty: "Task-<id>"
    std::string cancel_message;
    // Both only when the loop keeps statistics (debug mode, introspection): asyncio too records
    // where a task was created only in debug mode (its _source_traceback).
    std::unique_ptr<TaskStats> stats;
    std::source_location created;
    std::uint32_t cancel_deliveries = 0;  // debug mode: CancelledErrors of its own cancel() thrown into it
    std::uint32_t cleanups = 0;           // debug mode: CleanupAfterCancel scopes open in it
    std::uint64_t long_id = 0;            // the id, when it does not fit TaskBase's 32 bits
};

// 88 bytes, then the result or the exception (one union): the future's state, the all-tasks
// link, the frame, the frame to resume and the node it waits on, the out-of-line extras, the
// id; the flags and the cancel-request count sit in FutureBase's padding.
class TaskBase : public FutureBase, public ListHook<AllTasksTag> {
public:
    TaskBase(EventLoop& loop, std::coroutine_handle<> frame, std::string&& name, std::source_location created);

    bool cancel(std::string message) override;
    // asyncio's cancelling() (the count saturates at 65535 requests not taken back).
    int cancelling() const noexcept { return int(task_cancel_requests_); }
    int uncancel() noexcept;
    const std::string& cancel_message() const noexcept;
    // The message to pass on to what the task awaits: inside cancel(message), that request's.
    const std::string& passed_on_cancel_message() const noexcept;

    std::string name() const;
    void set_name(std::string name) { extras().name = std::move(name); }
    // The loop's count of tasks when it was made ("Task-<id>"), unique for the loop's life.
    std::uint64_t id() const noexcept { return id_ != 0 ? id_ : extras_->long_id; }
    // Where it was created, when the loop kept statistics then; otherwise an empty location.
    const std::source_location& created_at() const noexcept;
    // The same for reports (ExceptionContext::location): nothing when it was not recorded.
    std::optional<std::source_location> creation_site() const noexcept;
    // The outermost frame, while it exists (for the call graph).
    PromiseBase* root_promise() const noexcept { return root_ ? &root_promise_of() : nullptr; }
    WaitNode* waiting_on() const noexcept { return waiting_on_; }
    const TaskStats* stats() const noexcept { return extras_ ? extras_->stats.get() : nullptr; }
    bool started() const noexcept { return flag(kStepped); }
    std::string describe() const override;

    // Called by WaitNode.
    // An await_suspend that throws after suspended_at() (the backend refused the operation):
    // the task does not wait there, and the node is about to be destroyed with its frame.
    void suspend_failed(WaitNode& node) noexcept {
        if (waiting_on_ == &node) waiting_on_ = nullptr;
    }
    void suspended_at(WaitNode& node, std::coroutine_handle<> h) noexcept {
        waiting_on_ = &node;
        resume_ = h;
    }
    void about_to_suspend();
    // A cancellation that came as the awaited operation completed, when the operation's result
    // must not be lost: it is delivered at the next await (or ends the task, if none comes).
    void defer_cancel() noexcept { set_flag(kMustCancel, true); }
    bool consume_pending_cancel() noexcept {
        if (!flag(kMustCancel)) return false;
        set_flag(kMustCancel, false);
        return true;
    }
    void schedule() noexcept;
    void schedule_from_another_thread() noexcept;
    // A CancelledError of this task's own cancellation has just been thrown into its frame. In
    // debug mode, a task still running a while later (without uncancel()) is reported: it may
    // have swallowed it, which a task that never returns (a worker loop) would hide for ever.
    void cancel_delivered() noexcept;
    // The awaited task or future is done: the cancel requests passed on to it came back into
    // this frame as CancelledError, or were handled there (it gave a value), and so are not
    // this frame's to deliver, nor to be reported as swallowed here.
    void note_passed_on() noexcept {
        if (passed_on_cancels_ != UINT16_MAX) ++passed_on_cancels_;
    }
    void passed_on_settled(bool came_back) noexcept {
        if (came_back && passed_on_cancels_ != 0) cancel_delivered();
        // Never more than the requests still standing: one taken back by uncancel() meanwhile
        // was not absorbed, and counting it would hide a later swallowed one.
        if (!came_back)
            absorbed_cancels_ = std::uint16_t(std::min<unsigned>(absorbed_cancels_ + passed_on_cancels_, task_cancel_requests_));
        passed_on_cancels_ = 0;
    }

    // Runs `pass_on`, which cancels what this task waits for, as cancel() passes a request on:
    // one that comes back to this task through an await cycle (a child awaiting it) is
    // refused, so the cycle unwinds instead of bouncing for ever.
    template <class F>
    void pass_cancel_on(F&& pass_on) {
        struct Forwarding {
            TaskBase& t;
            bool was;
            ~Forwarding() { t.set_flag(kForwardingCancel, was); }
        } forwarding{*this, flag(kForwardingCancel)};
        set_flag(kForwardingCancel, true);
        pass_on();
    }

    // Joins a TaskGroup (nullptr: leaves it); the group lists its children through extras().
    TaskExtras& set_owner(TaskOwner* owner) {
        TaskExtras& e = extras();
        e.owner = owner;
        return e;
    }
    TaskOwner* owner() const noexcept { return extras_ ? extras_->owner : nullptr; }

    // Loop shutdown: the frame of a task that can never finish is destroyed.
    void abandon() noexcept;

protected:
    ~TaskBase() override;
    // The promise of root_ (its type is known only to the typed state).
    virtual PromiseBase& root_promise_of() const noexcept = 0;
    // What the finished frame threw, if anything.
    virtual std::exception_ptr root_error() const noexcept = 0;
    // Moves the finished frame's result into the typed state.
    virtual void take_outcome() = 0;

    std::coroutine_handle<> root_;

private:
    friend class corio::EventLoop;  // runs step() from the ready queue
    void step() noexcept;
    void complete() noexcept;
    void finish_task(State s, std::exception_ptr e) noexcept;
    void report_swallowed_cancel() noexcept;
    // Debug mode's look, a second after a CancelledError was thrown in, at a task still running.
    struct SwallowCheck {
        std::uint32_t delivery;             // which CancelledError (a later one's check decides)
        Clock::time_point due{};            // when the look was due
        std::uint8_t late_graces = 0;       // seconds granted because the look came late
        std::uint8_t resume_looks = 0;      // ticks granted because the task was about to run
    };
    void check_still_running_after_cancel(SwallowCheck check) noexcept;
    void arm_swallow_check(SwallowCheck check);
    friend class CleanupAfterCancel;
    TaskExtras& extras();

    // In FutureBase::flags_, beside kRetrieved.
    enum : std::uint8_t {
        kMustCancel = 2,        // a cancel() came while not waiting: delivered at the next await
        kForwardingCancel = 4,  // inside cancel(), passing it on to what the task awaits
        kStepped = 8,           // its body has begun
    };
    bool flag(std::uint8_t f) const noexcept { return (flags_ & f) != 0; }
    void set_flag(std::uint8_t f, bool on) noexcept { flags_ = on ? std::uint8_t(flags_ | f) : std::uint8_t(flags_ & ~f); }

    std::coroutine_handle<> resume_;
    WaitNode* waiting_on_ = nullptr;
    std::unique_ptr<TaskExtras> extras_;
    // "Task-<id>": 32 bits here; a loop's tasks past 4e9 (a day of a busy server) keep theirs
    // in the extras, so that ids never repeat (corio-ps's tree and cycles go by id).
    std::uint32_t id_ = 0;
    std::uint16_t passed_on_cancels_ = 0;  // requests cancel() passed on to what the task awaits
    std::uint16_t absorbed_cancels_ = 0;   // of those, the ones the awaited task handled
};

template <class T>
class TaskState final : public TaskBase, public ResultSlot<T> {
public:
    using Promise = typename Coro<T>::promise_type;
    TaskState(EventLoop& loop, std::coroutine_handle<Promise> frame, std::string&& name, std::source_location created)
        : TaskBase(loop, frame, std::move(name), created) {}
    ~TaskState() override {
        this->destroy(state());
    }

private:
    Promise& promise() const noexcept { return std::coroutine_handle<Promise>::from_address(root_.address()).promise(); }
    PromiseBase& root_promise_of() const noexcept override { return promise(); }
    std::exception_ptr& error_slot() noexcept override { return this->error(); }
    std::exception_ptr root_error() const noexcept override { return promise().error(); }
    void take_outcome() override {
        if constexpr (!std::is_void_v<T>) this->emplace(promise().take_value());
    }
};

// Awaits a FutureBase-derived state (a Task or a Future). Cancelling the awaiting task
// cancels the awaited one and keeps waiting for it, as asyncio does (test_cancel_awaited_task):
// if the awaited task swallows the cancel and returns, the awaiter gets that value.
TaskBase& require_task();

// The awaiter holds a reference to the state while the task waits, as asyncio's task holds its
// `_fut_waiter`: the last handle to a future may go away (a connection object replaced while a
// reader waits on its reply), and a later cancel() still reaches it.
template <class T, class S>
struct FutureAwaiter final : WaitNode, CompletionWaiter {
    explicit FutureAwaiter(S* s, bool move_out) noexcept : state(s), move_out(move_out) {}
    FutureAwaiter(FutureAwaiter&& o) noexcept : WaitNode(), CompletionWaiter(), state(o.state), move_out(o.move_out) {}
    FutureAwaiter(const FutureAwaiter&) = delete;
    FutureAwaiter& operator=(const FutureAwaiter&) = delete;
    ~FutureAwaiter() {
        if (holding) state->release();
    }
    S* state;
    bool move_out;
    bool holding = false;

    bool await_ready() const noexcept { return state->done(); }
    bool await_suspend(std::coroutine_handle<> h) {
        TaskBase& me = require_task();
        if (static_cast<FutureBase*>(state) == static_cast<FutureBase*>(&me))
            throw std::logic_error("Task cannot await on itself");
        // Its completion would come from another thread's loop, unsynchronised (asyncio's F5).
        if (state->loop() && state->loop() != me.loop())
            throw std::logic_error("Task got a Future attached to a different loop");
        me.about_to_suspend();
        task = &me;
        me.suspended_at(*this, h);
        state->add_waiter(*this);
        state->add_ref();
        holding = true;
        // A cancellation already requested is delivered by cancelling what we await, and we
        // wait for it to finish (asyncio's T6, bpo-34872): a child task is not left behind.
        if (me.consume_pending_cancel()) {
            on_cancel();
            if (!cancelled) me.note_passed_on();  // as cancel() counts one passed on while waiting
        }
        return true;
    }
    T await_resume() {
        StateRef<FutureBase> held(std::exchange(holding, false) ? state : nullptr);  // adopts ours
        if (task) task->passed_on_settled(state->cancelled());
        if (cancelled) {
            state->remove_waiter(*this);
            // The awaited future ended cancelled: its own CancelledError (the message of the
            // request that cancelled it) is what the task sees, not a later request's, as
            // asyncio's __step keeps the future's over its _must_cancel (T11).
            if (state->cancelled()) {
                task->cancel_delivered();
                state->rethrow_if_failed();
            }
            throw_if_cancelled();
        }
        // `co_await std::move(task)` moves the result out only if no other handle (ours aside)
        // can see it.
        return take_result<T>(*state, move_out && state->use_count() == (held ? 2u : 1u));
    }
    void on_future_done(FutureBase&) override { wake(); }
    void on_cancel() override;
    void detach() noexcept override { state->remove_waiter(*this); }
    void collect_awaited(std::vector<const FutureBase*>& out) const override { out.push_back(state); }
};

template <class T, class S>
void FutureAwaiter<T, S>::on_cancel() {
    if (!woken && !cancelled && state->cancel(task->passed_on_cancel_message())) return;
    // Done, its wake-up on the way: the task gets CancelledError instead of what the future
    // holds. asyncio's task.cancel() still calls the future's cancel(), which marks a failure
    // retrieved: no "exception was never retrieved" report for it.
    if (woken && state->done()) state->mark_retrieved();
    WaitNode::on_cancel();
}

}  // namespace corio::detail
