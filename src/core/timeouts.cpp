#include "corio/timeouts.hpp"


namespace corio {

Timeout::~Timeout() {
    if (timer_.armed()) loop_->remove_timer(timer_);
    due_.cancel();
}

void Timeout::enter() {
    if (state_ != State::Created) throw std::logic_error("Timeout has already been entered");
    task_ = &detail::require_task();
    loop_ = task_->loop();
    state_ = State::Entered;
    // Cancellations already requested before entry (say, inside an except-CancelledError
    // block) are not ours: gh-102780.
    entry_level_ = task_->cancelling();
    timer_.self = this;
    timer_.fire = &Timeout::on_timer;
    reschedule(when_);
}

void Timeout::reschedule(std::optional<Clock::time_point> when) {
    switch (state_) {
        case State::Created: throw std::logic_error("Timeout has not been entered");
        case State::Expiring: throw std::logic_error("Cannot change state of expiring Timeout");
        case State::Expired: throw std::logic_error("Cannot change state of expired Timeout");
        case State::Exited: throw std::logic_error("Cannot change state of finished Timeout");
        case State::Due: take_back_expiry(); break;
        case State::Entered: break;
    }
    when_ = when;
    if (timer_.armed()) loop_->remove_timer(timer_);
    if (!when) return;
    if (*when <= loop_->time()) {
        // A deadline already past is due now: its expiry is queued at once, as asyncio's
        // call_soon(_on_timeout), so it comes before whatever the body awaits next.
        on_timer(&timer_);
        return;
    }
    timer_.when = *when;
    loop_->add_timer(timer_);
}

void Timeout::on_timer(detail::TimerNode* t) noexcept {
    Timeout* self = static_cast<Timer*>(t)->self;
    self->state_ = State::Due;
    try {
        self->due_ = self->loop_->call_soon([self] { self->expire(); });
    } catch (...) {
        self->expire();  // no memory for the callback: expire now rather than never
    }
}

void Timeout::expire() noexcept {
    due_ = Handle();
    state_ = State::Expiring;
    task_->cancel({});
}

void Timeout::take_back_expiry() noexcept {
    due_.cancel();
    due_ = Handle();
    state_ = State::Entered;
}

void Timeout::exit(std::exception_ptr& error) noexcept {
    if (timer_.armed()) loop_->remove_timer(timer_);
    if (state_ == State::Due) take_back_expiry();
    if (state_ == State::Expiring) {
        state_ = State::Expired;
        if (task_->uncancel() <= entry_level_ && detail::is_cancellation(error))
            error = std::make_exception_ptr(TimeoutError());
    } else if (state_ == State::Entered) {
        state_ = State::Exited;
    }
}

}  // namespace corio
