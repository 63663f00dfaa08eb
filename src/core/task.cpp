#include "corio/task.hpp"

#include <chrono>
#include <cstdio>

#include "corio/debug.hpp"

namespace corio {
namespace detail {

bool loop_alive(const EventLoop* loop) noexcept;
bool loop_alive(const EventLoop* loop, std::uint64_t serial) noexcept;

// --- futures -------------------------------------------------------------------------------

namespace {
void schedule_done_callback(EventLoop& loop, FutureBase& f, Callback fn) noexcept {
    // A loop destroyed since cannot even be told (set_result() and cancel() refuse first).
    if (!f.loop_open()) return;
    try {
        loop.call_soon(std::move(fn));
    } catch (...) {
        loop.call_exception_handler({"could not schedule a done callback", std::current_exception(), {}, {}, {}});
    }
}

Callback bind_future(FutureBase& f, BasicCallback<FutureBase&> fn) {
    f.add_ref();
    return Callback([ref = StateRef<FutureBase>(&f), fn = std::move(fn)]() mutable { fn(*ref.get()); });
}

// A user done-callback waiting for a future: handed to call_soon when the future completes.
struct CallbackWaiter final : CompletionWaiter, Recycled {
    CallbackWaiter(EventLoop& l, Callback f) : loop(l), fn(std::move(f)) {}
    EventLoop& loop;
    Callback fn;
    void on_future_done(FutureBase& f) override {
        schedule_done_callback(loop, f, std::move(fn));
        delete this;
    }
};

// The same for a callback that is given the future: the future is bound to it only now, so a
// callback that never runs (a future that never completes) keeps nothing alive.
struct FutureCallbackWaiter final : CompletionWaiter, Recycled {
    FutureCallbackWaiter(EventLoop& l, BasicCallback<FutureBase&> f) : loop(l), fn(std::move(f)) {}
    EventLoop& loop;
    BasicCallback<FutureBase&> fn;
    void on_future_done(FutureBase& f) override {
        try {
            schedule_done_callback(loop, f, bind_future(f, std::move(fn)));
        } catch (...) {
            loop.call_exception_handler({"could not schedule a done callback", std::current_exception(), {}, {}, {}});
        }
        delete this;
    }
};
}  // namespace

FutureBase::~FutureBase() {
    // Callback waiters of a future that never completed: nothing will call them now.
    while (CompletionWaiter* w = waiters_.pop_front()) {
        if (auto* cw = dynamic_cast<CallbackWaiter*>(w)) delete cw;
        else if (auto* fw = dynamic_cast<FutureCallbackWaiter*>(w)) delete fw;
    }
}

std::exception_ptr FutureBase::exception() {
    if (state_ == State::Pending) throw InvalidStateError("Exception is not set.");
    mark_retrieved();
    std::exception_ptr* e = error_if_any();
    if (state_ == State::Cancelled) std::rethrow_exception(*e);
    return e ? *e : nullptr;
}

void FutureBase::rethrow_if_failed() {
    mark_retrieved();
    if (std::exception_ptr* e = error_if_any()) std::rethrow_exception(*e);
}

bool FutureBase::cancel(std::string message) {
    if (done()) {
        mark_retrieved();  // asyncio: cancel() on a done future silences the never-retrieved report
        return false;
    }
    if (has_waiters()) check_loop_open();  // its done callbacks could not be scheduled
    finish(State::Cancelled, std::make_exception_ptr(CancelledError(std::move(message))));
    return true;
}

bool FutureBase::loop_still_there() const noexcept {
    // The loop may be gone: a Future or Task handle can outlive corio::run(). A Future knows
    // its loop's serial, as a later loop may be made at the same address. A task is known by
    // address only (its 8 bytes are counted): a done task kept past its loop's end, with a new
    // loop made at the same address, is not told apart. A pending one has no such risk:
    // abandon() forgets the loop as it closes.
    if (!loop_) return false;
    std::uint64_t serial = loop_serial();
    if (loop_ == running_loop()) return serial == 0 || loop_->serial() == serial;
    return serial == 0 ? loop_alive(loop_) : loop_alive(loop_, serial);
}

bool FutureBase::loop_open() const noexcept { return loop_still_there() && !loop_->is_closed(); }

void FutureBase::check_loop_open() const {
    if (!loop_open()) throw std::logic_error("Event loop is closed");
    loop_->check_thread();
}

void FutureBase::add_done_callback(Callback cb) {
    check_loop_open();
    if (done()) {
        loop_->call_soon(std::move(cb));
        return;
    }
    waiters_.push_back(*new CallbackWaiter(*loop_, std::move(cb)));
}

void FutureBase::add_done_callback(BasicCallback<FutureBase&> cb) {
    check_loop_open();
    if (done()) {
        loop_->call_soon(bind_future(*this, std::move(cb)));
        return;
    }
    waiters_.push_back(*new FutureCallbackWaiter(*loop_, std::move(cb)));
}

void FutureBase::finish(State s, std::exception_ptr e) noexcept {
    if (s != State::Succeeded) ::new (static_cast<void*>(&error_slot())) std::exception_ptr(std::move(e));
    state_ = s;
    add_ref();
    while (CompletionWaiter* w = waiters_.pop_front()) w->on_future_done(*this);
    release();
}

void FutureBase::report_unretrieved() noexcept {
    if (state_ != State::Failed || retrieved()) return;
    try {
        ExceptionContext c;
        c.message = describe() + " exception was never retrieved";
        c.exception = error_slot();
        if (auto* t = dynamic_cast<TaskBase*>(this)) {
            c.task_name = t->name();
            c.location = t->creation_site();
        }
        // The last handle may go after its loop (kept past corio::run()): asyncio still logs it
        // then, through the closed loop's handler; ours is gone with the loop, so the default
        // handler (stderr) reports it.
        if (loop_still_there())
            loop_->call_exception_handler(c);
        else
            EventLoop::default_exception_handler(c);
    } catch (...) {
    }
}

void FutureBase::release_slow() noexcept {
    report_unretrieved();
    delete this;
}

// --- waiting -------------------------------------------------------------------------------

void TaskBase::about_to_suspend() {
    if (const auto& hook = loop_->suspend_hook()) hook(*this);
}

bool WaitNode::suspend(std::coroutine_handle<> h) {
    TaskBase& t = require_task();
    task = &t;
    t.about_to_suspend();
    t.suspended_at(*this, h);
    if (t.consume_pending_cancel()) {
        // Delivered from here, but on the next tick (asyncio cancels the future the task
        // yields, whose callback wakes it): what is already ready runs first, a timeout due now
        // expires first, and a loop of awaits that each find a cancel pending cannot starve it.
        cancelled = true;
        wake();
        return false;
    }
    return true;
}

void WaitNode::wake() noexcept {
    woken = true;
    task->schedule();
}

// A ready-queue entry keeps its kind in the object pointer's three low bits.
static_assert(alignof(TaskBase) >= 8 && alignof(WaitNode) >= 8);

void WaitNode::wake_from_timer() noexcept {
    woken = true;
    task->loop()->schedule_timer_wake(*this);
}

void WaitNode::throw_if_cancelled() const {
    if (cancelled) {
        task->cancel_delivered();
        throw CancelledError(task->cancel_message());
    }
}

// --- tasks ---------------------------------------------------------------------------------

namespace {
// The cancel() request being passed on by `task` right now (cancel() may nest, through tasks
// that await tasks: each call saves and restores the one outside it).
struct ForwardedCancel {
    const TaskBase* task = nullptr;
    const std::string* message = nullptr;
};
thread_local ForwardedCancel forwarded_cancel;
}  // namespace

TaskBase::TaskBase(EventLoop& loop, std::coroutine_handle<> frame, std::string&& name, std::source_location created)
    : FutureBase(&loop), root_(frame), resume_(frame) {
    const std::uint64_t id = loop.next_task_id();
    if (id <= UINT32_MAX) {
        id_ = std::uint32_t(id);
    } else {
        extras().long_id = id;  // the loop's 4,294,967,296th task and later: id_ stays 0
    }
    if (!name.empty()) extras().name = std::move(name);
    if (loop.keeps_task_stats()) {
        TaskExtras& e = extras();
        e.stats = std::make_unique<TaskStats>();
        e.stats->created = Clock::now();
        e.created = created;
    }
}

const std::source_location& TaskBase::created_at() const noexcept {
    static const std::source_location unknown{};
    return extras_ ? extras_->created : unknown;
}

std::optional<std::source_location> TaskBase::creation_site() const noexcept {
    if (!*created_at().file_name()) return std::nullopt;
    return created_at();
}

TaskExtras& TaskBase::extras() {
    if (!extras_) extras_.reset(new TaskExtras(*this));
    return *extras_;
}

TaskBase::~TaskBase() {
    // A child freed before its group heard of its end (the closing loop dropped the callback
    // that would have told it) leaves the group's list: the group may outlive it, in an async
    // generator's frame destroyed later.
    if (extras_ && extras_->owner) extras_->owner->forget_child(*this);
    if (root_) root_.destroy();
}

std::string TaskBase::describe() const { return "Task"; }

std::string TaskBase::name() const {
    if (extras_ && !extras_->name.empty()) return extras_->name;
    return "Task-" + std::to_string(id());
}

const std::string& TaskBase::passed_on_cancel_message() const noexcept {
    if (forwarded_cancel.task == this) return *forwarded_cancel.message;
    return cancel_message();
}

const std::string& TaskBase::cancel_message() const noexcept {
    static const std::string empty;
    return extras_ ? extras_->cancel_message : empty;
}

bool TaskBase::cancel(std::string message) {
    if (done()) {
        mark_retrieved();  // asyncio: cancel() on a done future silences the never-retrieved report
        return false;
    }
    loop_->check_thread();  // a pending task's loop is alive (it abandons the task as it closes)
    // Tasks that await each other in a cycle forward the cancel round to this very call: refuse
    // it there, so the task that forwarded it stops waiting and the cycle unwinds.
    if (flag(kForwardingCancel)) return false;
    if (task_cancel_requests_ != UINT16_MAX) ++task_cancel_requests_;
    // The first request to reach what the task awaits fixes the message it will see (asyncio:
    // it cancelled the awaited future with it, and a later cancel() finds that future already
    // cancelled; T11), whether the wait gave up or passed it on to the future or task awaited.
    // Not waiting, the last request's message is kept, as asyncio's is.
    // (A request passed on to an awaited task that has finished since, having handled it, did
    // not reach us: asyncio's later cancel() finds that task done and sets its own message.)
    const bool delivered = waiting_on_ && (waiting_on_->cancelled || (passed_on_cancels_ > 0 && !waiting_on_->woken));
    if (!delivered && (!message.empty() || extras_)) extras().cancel_message = std::move(message);
    if (waiting_on_) {
        // What is passed on to the awaited task is this request's message, as asyncio's
        // cancel(msg) passes msg to its _fut_waiter, even when an earlier one fixed ours.
        const std::string& passed_message = delivered ? message : cancel_message();
        struct Forwarding {
            TaskBase& t;
            ForwardedCancel saved;
            ~Forwarding() {  // even if on_cancel throws
                t.set_flag(kForwardingCancel, false);
                forwarded_cancel = saved;
            }
        } forwarding{*this, forwarded_cancel};
        forwarded_cancel = {this, &passed_message};
        set_flag(kForwardingCancel, true);
        waiting_on_->on_cancel();
        if (waiting_on_ && !waiting_on_->cancelled) note_passed_on();
    } else {
        set_flag(kMustCancel, true);
    }
    return true;
}

int TaskBase::uncancel() noexcept {
    if (task_cancel_requests_ > 0) {
        --task_cancel_requests_;
        // A request taken back is no longer one a child may have absorbed.
        if (absorbed_cancels_ > task_cancel_requests_) absorbed_cancels_ = task_cancel_requests_;
        if (task_cancel_requests_ == 0) {  // 3.13: nothing left to deliver
            set_flag(kMustCancel, false);
            if (waiting_on_ && waiting_on_->late_cancel) {
                waiting_on_->cancelled = false;
                waiting_on_->late_cancel = false;
            }
        }
    }
    return int(task_cancel_requests_);
}

void TaskBase::schedule() noexcept {
    EventLoop& loop = *loop_;
    if (loop.get_debug() && loop.is_running() && !loop.owned_by_this_thread()) [[unlikely]] {
        schedule_from_another_thread();
        return;
    }
    loop.schedule(*this);
}

// Debug mode: a primitive of this task's loop (a Queue, an Event, a Lock) used from another
// thread woke it. asyncio's debug mode refuses the call there; a primitive's wake cannot throw,
// so the wake goes through the loop's inbox (not lost, as it otherwise may be) and the loop
// reports the misuse on its own thread.
void TaskBase::schedule_from_another_thread() noexcept {
    // Nothing of the task's is touched from here but what identifies it: by the time the loop
    // runs the callback, the loop's own thread may have cancelled it out of that wait (the
    // wake's flag, set on this thread, is not ordered with it), and it may have ended.
    const std::uint64_t task_id = id();
    const WaitNode* node = waiting_on_;
    EventLoop& loop = *loop_;
    try {
        loop.call_soon_threadsafe([task_id, node, &loop] {
            TaskBase* woken = nullptr;
            loop.tasks().for_each([&](TaskBase& t) {
                if (t.id() == task_id && t.waiting_on() == node) woken = &t;  // else it left that wait
            });
            if (!woken) return;
            loop.schedule(*woken);
            try {
                loop.call_exception_handler(
                    {"Task " + woken->name() +
                         " was woken from another thread than its loop's (a Queue, Event, Lock or other primitive used "
                         "outside its loop's thread): only call_soon_threadsafe may come from there",
                     nullptr, woken->name(), woken->creation_site(), {}});
            } catch (...) {
            }
        });
    } catch (...) {
        // The loop refuses (it closes): it abandons the task, which nothing else would wake.
    }
}

void TaskBase::step() noexcept {
    EventLoop& loop = *loop_;
    waiting_on_ = nullptr;
    if (flag(kMustCancel) && !started()) {
        // Cancelled before its first step: the body never runs, not even its finally blocks.
        set_flag(kMustCancel, false);
        root_.destroy();
        root_ = {};
        finish_task(State::Cancelled, std::make_exception_ptr(CancelledError(cancel_message())));
        return;
    }
    if (!started()) {
        set_flag(kStepped, true);
        root_promise_of().started = true;
    }
    loop.set_current_task(this);
    if (TaskStats* stats = extras_ ? extras_->stats.get() : nullptr; stats || loop.get_debug()) {
        auto t0 = Clock::now();
        resume_.resume();
        auto took = Clock::now() - t0;
        loop.set_current_task(nullptr);
        if (stats) {
            stats->busy += took;
            ++stats->steps;
        }
        if (loop.get_debug() && took >= loop.slow_callback_duration) report_slow_step(*this, took);
    } else {
        resume_.resume();
        loop.set_current_task(nullptr);
    }
    if (root_.done()) complete();
}

void TaskBase::complete() noexcept {
    State s;
    std::exception_ptr e;
    if (std::exception_ptr error = root_error()) {
        e = std::move(error);
        s = is_cancellation(e) ? State::Cancelled : State::Failed;
    } else if (flag(kMustCancel)) {
        // It cancelled itself and returned without another suspension: the result is dropped.
        set_flag(kMustCancel, false);
        s = State::Cancelled;
        e = std::make_exception_ptr(CancelledError(cancel_message()));
    } else {
        take_outcome();
        s = State::Succeeded;
        // The guides' "swallowed cancellation": cancel() was asked for, nobody took it back
        // with uncancel(), yet the task returned normally. Not when the cancel was passed on to
        // the task or future it awaited, which handled it and gave a value: nothing was thrown
        // here for this frame to swallow.
        if (task_cancel_requests_ > absorbed_cancels_ && loop_->get_debug()) report_swallowed_cancel();
    }
    root_.destroy();
    root_ = {};
    finish_task(s, std::move(e));
}

void TaskBase::finish_task(State s, std::exception_ptr e) noexcept {
    loop_->unregister_task(*this);
    // The owner (a TaskGroup) hears of it from a callback queued before the task's waiters are
    // woken, as asyncio's TaskGroup does from the done callback it added first (F2): what was
    // already ready runs first (a sibling woken in the same tick fails on its own instead of
    // being cancelled by the first failure), and the group acts before a body awaiting this
    // child resumes (it sees CancelledError, not the child's error). A group destroyed
    // meanwhile (loop teardown) has cleared the owner.
    TaskOwner* tell_now = nullptr;
    if (TaskOwner* owner = this->owner()) {
        try {
            AnyTask child(this);
            loop_->call_soon([child]() {
                if (TaskOwner* o = child.state()->owner()) o->on_child_done(*child.state());
            });
        } catch (...) {
            tell_now = owner;  // no memory for the callback: told at once, once it is done
        }
    }
    finish(s, std::move(e));
    if (tell_now) tell_now->on_child_done(*this);
    release();  // the loop's reference: may delete this
}

void TaskBase::abandon() noexcept {
    // Leave what the task waits on before its frame (which holds the waiting node) goes: the
    // primitive may outlive the task, and another frame destroyed here may still set it.
    if (waiting_on_) {
        waiting_on_->detach();
        waiting_on_ = nullptr;
    }
    if (root_) {
        root_.destroy();
        root_ = {};
    }
    loop_->unregister_task(*this);
    if (TaskOwner* owner = this->owner()) owner->forget_child(*this);
    mark_retrieved();
    // Whoever waits for the task hears that it was cancelled, as with any cancellation: tasks
    // (themselves abandoned next), done callbacks (dropped unrun by the closing loop, which ends a
    // run_coroutine_threadsafe future with broken_promise instead of leaving it waiting forever).
    finish(State::Cancelled, std::make_exception_ptr(CancelledError("the event loop was closed")));
    loop_ = nullptr;
    release();
}

TaskBase& require_task() {
    EventLoop* loop = running_loop();
    TaskBase* t = loop ? loop->current_task() : nullptr;
    if (!t) throw std::logic_error("corio: this awaitable must be awaited inside a task");
    return *t;
}

void report_never_awaited(const PromiseBase& p) noexcept {
    EventLoop* loop = running_loop();
    if (!loop || !loop->get_debug()) return;
    ExceptionContext c;
    c.message = std::string("coroutine '") + p.location.function_name() + "' was never awaited";
    c.location = p.location;
    c.location_is_definition = true;
    if (TaskBase* t = loop->current_task()) c.task_name = t->name();
    loop->call_exception_handler(c);
}

}  // namespace detail

AnyTask current_task() {
    EventLoop* loop = detail::running_loop();
    return AnyTask(loop ? loop->current_task() : nullptr);
}

std::vector<AnyTask> all_tasks() {
    std::vector<AnyTask> out;
    get_running_loop().tasks().for_each([&](detail::TaskBase& t) { out.emplace_back(&t); });
    return out;
}

}  // namespace corio
