#include "corio/taskgroup.hpp"

namespace corio {

struct TaskGroup::EmptyWaiter final : detail::WaitNode {
    explicit EmptyWaiter(TaskGroup& g) : group(g) {}
    TaskGroup& group;
    bool await_ready() const noexcept { return group.children_.empty(); }
    bool await_suspend(std::coroutine_handle<> h) {
        if (!suspend(h)) return true;  // woken already, to take a pending cancellation
        group.exit_waiter_ = this;
        return true;
    }
    void await_resume() const { throw_if_cancelled(); }
    void detach() noexcept override {
        if (group.exit_waiter_ == this) group.exit_waiter_ = nullptr;
    }
    void collect_awaited(std::vector<const detail::FutureBase*>& out) const override {
        group.children_.for_each([&](detail::TaskExtras& c) { out.push_back(&c.task); });
    }
};

TaskGroup::~TaskGroup() {
    // Only reached with live children when a frame is destroyed mid-flight (loop teardown).
    while (detail::TaskExtras* c = children_.pop_front()) c->owner = nullptr;
}

void TaskGroup::adopt(detail::TaskBase& child) {
    children_.push_back(child.set_owner(this));
}

void TaskGroup::forget_child(detail::TaskBase& child) noexcept {
    children_.remove(child.set_owner(nullptr));
}

void TaskGroup::abort() {
    aborting_ = true;
    children_.for_each([](detail::TaskExtras& c) {
        if (!c.task.done()) c.task.cancel({});
    });
}

void TaskGroup::cancel() {
    if (finished_) return;
    if (!aborting_) abort();
    if (!parent_cancel_requested_) {
        parent_cancel_requested_ = true;
        parent_->cancel({});
    }
}

void TaskGroup::on_child_done(detail::TaskBase& child) {
    children_.remove(child.set_owner(nullptr));
    if (children_.empty() && exit_waiter_) {
        EmptyWaiter* w = exit_waiter_;
        exit_waiter_ = nullptr;
        w->wake();
    }
    if (child.cancelled()) return;
    std::exception_ptr e = child.exception();  // marks it retrieved: the group reports it
    if (!e) return;
    errors_.push_back(std::move(e));
    if (!aborting_ && !parent_cancel_requested_) {
        // Stop the body where it is: cancelling the parent is how the group interrupts it.
        abort();
        parent_cancel_requested_ = true;
        parent_->cancel({});
    }
}

namespace {
bool is_interrupt(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const KeyboardInterrupt&) {
        return true;
    } catch (...) {
        return false;
    }
}
}  // namespace

std::exception_ptr TaskGroup::first_interrupt(std::size_t failed_before_exit, const std::exception_ptr& body_error) const {
    for (std::size_t i = 0; i < errors_.size(); ++i) {
        if (i == failed_before_exit && body_error && is_interrupt(body_error)) return body_error;
        if (is_interrupt(errors_[i])) return errors_[i];
    }
    if (body_error && is_interrupt(body_error)) return body_error;
    return nullptr;
}

Coro<> TaskGroup::exit(std::exception_ptr body_error) {
    detail::CleanupAfterCancel cleaning;  // a cancelled parent waits for its children here
    exiting_ = true;
    const std::size_t failed_before_exit = errors_.size();
    std::exception_ptr propagate_cancel;
    bool body_failed = false;
    bool cancelled_while_aborting = false;
    if (body_error) {
        if (detail::is_cancellation(body_error))
            propagate_cancel = body_error;
        else
            body_failed = true;
        if (!aborting_) abort();
    }
    while (!children_.empty()) {
        try {
            EmptyWaiter w(*this);
            co_await w;
        } catch (const CancelledError&) {
            // The parent is cancelled while we wait: cancel the children and keep waiting.
            if (!aborting_) {
                propagate_cancel = std::current_exception();
                abort();
            } else {
                cancelled_while_aborting = true;  // the group's own request, or one from outside
            }
        }
    }
    finished_ = true;
    // The group cancelled its parent itself: take that request back. Only if nobody else
    // asked for a cancellation too is the CancelledError ours to swallow.
    if (parent_cancel_requested_ && parent_->uncancel() == 0) propagate_cancel = nullptr;
    // A cancellation from outside that came while the group was aborting itself (after
    // tg.cancel(), say) was caught above without being recorded; it is still requested, and it
    // is not the group's to swallow (gh-155433).
    if (cancelled_while_aborting && !propagate_cancel && !body_failed && errors_.empty() &&
        parent_->cancelling() > entry_level_)
        propagate_cancel = std::make_exception_ptr(CancelledError(parent_->cancel_message()));
    if (propagate_cancel && errors_.empty()) std::rethrow_exception(propagate_cancel);
    // asyncio's _base_error: a KeyboardInterrupt (the body's or a child's, the first to come)
    // propagates as itself, not inside the group, which would make it a std::exception.
    if (std::exception_ptr interrupt = first_interrupt(failed_before_exit, body_failed ? body_error : nullptr))
        std::rethrow_exception(interrupt);
    if (body_failed) errors_.push_back(body_error);
    if (!errors_.empty()) {
        // Keep an outer cancellation pending: the parent's next await sees it.
        if (parent_->cancelling() > 0) {
            parent_->uncancel();
            parent_->cancel({});
        }
        throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors_));
    }
}

}  // namespace corio
