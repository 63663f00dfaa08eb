#include "corio/detail/task_set_waiter.hpp"

#include "corio/detail/task_base.hpp"

namespace corio::detail {

TaskSetWaiter::TaskSetWaiter(std::vector<FutureBase*> futures, Until until, std::optional<Clock::time_point> deadline)
    : futures_(std::move(futures)), until_(until), deadline_(deadline) {}

TaskSetWaiter::~TaskSetWaiter() { detach(); }

bool TaskSetWaiter::satisfied() const noexcept {
    std::size_t done = 0;
    for (FutureBase* f : futures_) {
        if (!f->done()) continue;
        ++done;
        switch (until_) {
            case Until::FirstDone:
                return true;
            case Until::FirstException:
                if (f->state() == FutureBase::State::Failed) return true;
                break;
            case Until::FirstFailure:
                if (f->state() != FutureBase::State::Succeeded) return true;
                break;
            case Until::AllDone:
                break;
        }
    }
    return done == futures_.size();
}

bool TaskSetWaiter::satisfied_by(const FutureBase& f) const noexcept {
    switch (until_) {
        case Until::FirstDone: return true;
        case Until::FirstException: return f.state() == FutureBase::State::Failed;
        case Until::FirstFailure: return f.state() != FutureBase::State::Succeeded;
        case Until::AllDone: return false;
    }
    return false;
}

bool TaskSetWaiter::await_ready() { return satisfied(); }

bool TaskSetWaiter::await_suspend(std::coroutine_handle<> h) {
    listeners_.resize(futures_.size());  // before suspend(): nothing to undo if it throws
    if (!suspend(h)) return true;  // woken already, to take a pending cancellation
    loop_ = task->loop();
    done_count_ = 0;
    for (std::size_t i = 0; i < futures_.size(); ++i) {
        listeners_[i].owner = this;
        if (futures_[i]->done())
            ++done_count_;
        else
            futures_[i]->add_waiter(listeners_[i]);
    }
    if (deadline_) {
        this->when = *deadline_;
        this->TimerNode::fire = &TaskSetWaiter::fire;
        try {
            loop_->add_timer(*this);
        } catch (...) {
            detach();
            task->suspend_failed(*this);
            throw;
        }
    }
    return true;
}

void TaskSetWaiter::child_done(FutureBase& f) {
    completed_.push_back(&f);
    ++done_count_;
    if (!woken && (satisfied_by(f) || done_count_ == futures_.size())) {
        detach();
        wake();
    }
}

void TaskSetWaiter::fire(TimerNode* t) noexcept {
    auto* self = static_cast<TaskSetWaiter*>(t);
    self->timed_out_ = true;
    self->detach();
    self->wake_from_timer();
}

void TaskSetWaiter::on_cancel() {
    if (pass_cancel_ && !woken && !cancelled) {
        // Inside TaskBase::cancel: a future that passes it back to us (an await cycle) refuses.
        const std::string& message = task->passed_on_cancel_message();
        bool reached = false;
        for (FutureBase* f : futures_)
            if (!f->done() && f->cancel(message)) reached = true;
        if (reached) {
            if (!cancel_passed_) passed_message_ = message;  // the first fixes it (T11)
            cancel_passed_ = true;
            return;
        }
    }
    WaitNode::on_cancel();
}

void TaskSetWaiter::detach() noexcept {
    for (std::size_t i = 0; i < listeners_.size(); ++i) futures_[i]->remove_waiter(listeners_[i]);
    if (TimerNode::armed()) loop_->remove_timer(*this);
}

Coro<bool> wait_all_absorbing(std::vector<FutureBase*> futures) {
    CleanupAfterCancel cleaning;
    bool cancelled_meanwhile = false;
    for (;;) {
        try {
            TaskSetWaiter all(futures, TaskSetWaiter::Until::AllDone);
            co_await all;
            co_return cancelled_meanwhile;
        } catch (const CancelledError& e) {
            // The futures were cancelled already; this request is passed on as well, so one that
            // handled the first cancel and went on still hears it (as asyncio's awaits pass
            // every cancel() on to what they wait for).
            cancelled_meanwhile = true;
            require_task().pass_cancel_on([&] {
                for (FutureBase* f : futures)
                    if (!f->done()) f->cancel(e.message());
            });
        }
    }
}

}  // namespace corio::detail
