#include "corio/semaphore.hpp"

#include <limits>
#include <stdexcept>

namespace corio {

Semaphore::Semaphore(int value) : Semaphore(value, false) {}

Semaphore::Semaphore(int value, bool bounded)
    : value_(value), bound_(bounded ? value : std::numeric_limits<int>::max()), bounded_(bounded) {
    if (value < 0) throw std::invalid_argument("Semaphore initial value must be >= 0");
}

Semaphore::~Semaphore() {
    // Waiters left on a dying semaphore can never be woken; they are told it is gone, so that a
    // cancellation (or their frame's destruction) does not touch it.
    for (detail::WaitList* list : {&waiters_, &handed_})
        while (auto* w = static_cast<Awaiter*>(list->pop_front())) w->sem_ = nullptr;
}

void Semaphore::release() {
    // Permits handed to waiters that have not run yet are already out of value_ (SM5).
    if (value_ >= bound_)
        throw std::logic_error(bounded_ ? "BoundedSemaphore released too many times" : "Semaphore value overflow");
    if (!waiters_.empty())
        hand_to_first();
    else
        ++value_;
}

void Semaphore::hand_to_first() noexcept {
    auto* next = static_cast<Awaiter*>(waiters_.pop_front());
    next->granted_ = true;
    handed_.push_back(*next);
    next->wake();
}

// Permits freed while earlier waiters were still in line (a release with no one left in the
// list but a handed waiter not yet run) went to value_; once the line has moved, hand them on.
void Semaphore::hand_out_free_permits() noexcept {
    while (value_ > 0 && !waiters_.empty()) {
        --value_;
        hand_to_first();
    }
}

Semaphore::Awaiter::~Awaiter() {
    if (!sem_) return;
    if (!granted_) {
        sem_->waiters_.remove(*this);
        return;
    }
    // Handed a permit but never to run: given back, as the guard it never got would have.
    sem_->handed_.remove(*this);
    ++sem_->value_;
    sem_->hand_out_free_permits();
}

SemaphoreGuard Semaphore::Awaiter::await_resume() {
    if (!sem_) {
        throw_if_cancelled();
        return SemaphoreGuard();
    }
    if (granted_) {
        granted_ = false;
        sem_->handed_.remove(*this);
        if (cancelled) ++sem_->value_;  // handed a permit, but we will not run: give it back
        sem_->hand_out_free_permits();
    }
    throw_if_cancelled();
    return SemaphoreGuard(*sem_);
}

}  // namespace corio
