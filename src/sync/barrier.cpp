#include "corio/barrier.hpp"

#include <exception>
#include <stdexcept>

#include "corio/errors.hpp"

namespace corio {

Barrier::Barrier(int parties) : parties_(parties) {
    if (parties < 1) throw std::invalid_argument("parties must be >= 1");
}

Coro<int> Barrier::wait() {
    LockGuard held = co_await cond_.acquire();

    // While the previous round drains or resets, a newcomer must not count in it.
    auto open = [this] { return state_ != State::Draining && state_ != State::Resetting; };
    Coro<bool> opened = cond_.wait_for(open);
    co_await std::move(opened);
    if (state_ == State::Broken) throw BrokenBarrierError();

    const int index = count_++;
    std::exception_ptr error;
    try {
        if (index + 1 == parties_) {
            state_ = State::Draining;
            cond_.notify_all();
        } else {
            auto tripped = [this] { return state_ != State::Filling; };
            Coro<bool> released = cond_.wait_for(tripped);
            co_await std::move(released);
            if (state_ == State::Broken || state_ == State::Resetting) throw BrokenBarrierError();
        }
    } catch (...) {
        error = std::current_exception();
    }
    // A cancelled task leaves too: Condition::wait gave the lock back before it threw.
    --count_;
    leave();
    if (error) std::rethrow_exception(error);
    co_return index;
}

// The last task out of a draining or resetting round opens the barrier for the next one.
void Barrier::leave() noexcept {
    if (count_ != 0) return;
    if (state_ == State::Draining || state_ == State::Resetting) state_ = State::Filling;
    cond_.notify_all();
}

Coro<> Barrier::reset() {
    LockGuard held = co_await cond_.acquire();
    state_ = count_ > 0 ? State::Resetting : State::Filling;
    cond_.notify_all();
}

Coro<> Barrier::abort() {
    LockGuard held = co_await cond_.acquire();
    state_ = State::Broken;
    cond_.notify_all();
}

}  // namespace corio
