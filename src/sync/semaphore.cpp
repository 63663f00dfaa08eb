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
    while (waiters_.pop_front()) {
    }
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
    ++handed_;
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

Semaphore::Awaiter::~Awaiter() { sem_.waiters_.remove(*this); }

SemaphoreGuard Semaphore::Awaiter::await_resume() {
    if (granted_) {
        --sem_.handed_;
        if (cancelled) ++sem_.value_;  // handed a permit, but we will not run: give it back
        sem_.hand_out_free_permits();
    }
    throw_if_cancelled();
    return SemaphoreGuard(sem_);
}

}  // namespace corio
