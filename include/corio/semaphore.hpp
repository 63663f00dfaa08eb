// asyncio.Semaphore and BoundedSemaphore: a counter of permits, taken in FIFO order.
//
// release() hands a permit straight to the first waiter (the value does not change), and that
// waiter counts as a holder from then on. Until it has run, newcomers queue behind it even if
// permits are free (SM2: locked() counts it), so tasks acquire in the order they asked. A
// waiter that was handed a permit but is cancelled before it runs gives the permit back and
// wakes the next one (SM4, gh-90155): nothing is lost, nothing hangs.
#pragma once

#include <coroutine>
#include <utility>

#include "corio/detail/wait_node.hpp"
#include "corio/lock.hpp"  // ReleaseGuard

namespace corio {

class Semaphore;
using SemaphoreGuard = ReleaseGuard<Semaphore>;

class Semaphore {
public:
    class Awaiter;

    // Throws std::invalid_argument when value < 0.
    explicit Semaphore(int value = 1);
    Semaphore(const Semaphore&) = delete;
    Semaphore& operator=(const Semaphore&) = delete;
    ~Semaphore();

    // co_await sem.acquire() -> SemaphoreGuard.
    Awaiter acquire() noexcept;
    // Gives a permit back, to the first waiter if any. A BoundedSemaphore throws
    // std::logic_error past its initial value.
    void release();
    // True when acquire() would suspend: no free permit, or earlier tasks still in line.
    bool locked() const noexcept { return value_ == 0 || !waiters_.empty() || !handed_.empty(); }
    int value() const noexcept { return value_; }

protected:
    Semaphore(int value, bool bounded);

private:
    friend class Awaiter;
    void hand_to_first() noexcept;
    void hand_out_free_permits() noexcept;

    int value_;
    int bound_;
    bool bounded_;
    detail::WaitList waiters_;
    // Waiters handed a permit that have not run yet: still linked, so that a destroyed
    // semaphore can tell them it is gone.
    detail::WaitList handed_;
};

class BoundedSemaphore : public Semaphore {
public:
    explicit BoundedSemaphore(int value = 1) : Semaphore(value, true) {}
};

class Semaphore::Awaiter final : public detail::ListedWaitNode {
public:
    explicit Awaiter(Semaphore& sem) noexcept : sem_(&sem) {}
    // Movable until awaited, so that wait_for(sem.acquire(), t) can take it.
    Awaiter(Awaiter&& other) noexcept : ListedWaitNode(std::move(other)), sem_(other.sem_) {}
    // A frame destroyed mid-wait (loop shutdown) gets here still linked, or handed a permit.
    ~Awaiter();

    bool await_ready() noexcept {
        if (sem_->locked()) return false;
        --sem_->value_;
        return true;
    }
    bool await_suspend(std::coroutine_handle<> h) {
        if (!suspend(h)) return true;  // woken already, to take a pending cancellation
        sem_->waiters_.push_back(*this);
        return true;
    }
    // A waiter of a destroyed semaphore can still be cancelled; one it had handed a permit to
    // gets an empty guard.
    SemaphoreGuard await_resume();
    void detach() noexcept override {
        if (sem_ && !granted_) sem_->waiters_.remove(*this);  // a granted one is in handed_
    }

private:
    friend class Semaphore;
    Semaphore* sem_;  // null once the semaphore is destroyed
    bool granted_ = false;  // linked in sem_->handed_
};

inline Semaphore::Awaiter Semaphore::acquire() noexcept { return Awaiter(*this); }

}  // namespace corio
