// asyncio.Lock: a FIFO mutex between the tasks of one loop, and ReleaseGuard, the RAII handle
// that `co_await x.acquire()` returns for every primitive of this kind (`async with x:`).
//
// Ownership is handed straight to the first waiter on release(): the lock stays locked while
// that waiter is woken but has not run yet, so a newcomer can never barge past it (LK2), and a
// waiter cancelled after the hand-off passes the lock on instead of dropping or keeping it
// (bpo-32734). The lock is not owned: any task may release it, as in asyncio.
#pragma once

#include <coroutine>
#include <exception>
#include <utility>

#include "corio/detail/wait_node.hpp"

namespace corio {

namespace detail {
// A guard's destructor cannot throw: an error from its release (a lock already released by
// hand, a BoundedSemaphore over-release) goes to the running loop's exception handler.
void report_release_error(std::exception_ptr error) noexcept;
}  // namespace detail

// Releases the primitive it holds exactly once: on release(), or when destroyed.
template <class P>
class [[nodiscard("the guard releases at once if discarded; dismiss() it to keep holding")]] ReleaseGuard {
public:
    ReleaseGuard() noexcept = default;
    explicit ReleaseGuard(P& p) noexcept : p_(&p) {}
    ReleaseGuard(ReleaseGuard&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    ReleaseGuard& operator=(ReleaseGuard&& o) noexcept {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    ReleaseGuard(const ReleaseGuard&) = delete;
    ReleaseGuard& operator=(const ReleaseGuard&) = delete;
    ~ReleaseGuard() { reset(); }

    // Releases early; the destructor then does nothing. Errors propagate here.
    void release() {
        if (P* p = std::exchange(p_, nullptr)) p->release();
    }
    // Keeps the primitive held and forgets it, for asyncio's bare `await lock.acquire()`
    // paired with a later explicit `lock.release()`.
    void dismiss() noexcept { p_ = nullptr; }
    bool owns() const noexcept { return p_ != nullptr; }
    explicit operator bool() const noexcept { return owns(); }

private:
    void reset() noexcept {
        if (P* p = std::exchange(p_, nullptr)) {
            try {
                p->release();
            } catch (...) {
                detail::report_release_error(std::current_exception());
            }
        }
    }

    P* p_ = nullptr;
};

class Lock;
using LockGuard = ReleaseGuard<Lock>;

class Lock {
public:
    class Awaiter;

    Lock() = default;
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
    ~Lock();

    // co_await lock.acquire() -> LockGuard.
    Awaiter acquire() noexcept;
    // Unlocks, or hands the lock to the first waiter. Throws std::logic_error when nobody holds
    // it: unlocked, or handed to a waiter that has not run yet (asyncio's lock is unlocked then).
    void release();
    bool locked() const noexcept { return locked_; }

private:
    friend class Awaiter;
    friend class Condition;
    // Held by a task that has run since it got it (Condition's "acquired" checks).
    bool held() const noexcept { return locked_ && !handed_to_; }

    bool locked_ = false;
    // Woken with the lock and not run yet: the lock's holder-to-be, which a second release()
    // must not rob and a destroyed lock must let go of.
    Awaiter* handed_to_ = nullptr;
    detail::WaitList waiters_;
};

class Lock::Awaiter final : public detail::ListedWaitNode {
public:
    explicit Awaiter(Lock& lock) noexcept : lock_(&lock) {}
    // Movable until awaited, so that wait_for(lock.acquire(), t) can take it.
    Awaiter(Awaiter&& other) noexcept : ListedWaitNode(std::move(other)), lock_(other.lock_) {}
    // A frame destroyed mid-wait (loop shutdown) gets here still linked, or handed the lock.
    ~Awaiter();

    // While anyone waits the lock is locked (hand-off), so "unlocked" alone means "free".
    bool await_ready() noexcept {
        if (lock_->locked_) return false;
        lock_->locked_ = true;
        return true;
    }
    bool await_suspend(std::coroutine_handle<> h) {
        if (!suspend(h)) return true;  // woken already, to take a pending cancellation
        lock_->waiters_.push_back(*this);
        return true;
    }
    // A waiter of a destroyed lock can still be cancelled; one it had been handed to gets an
    // empty guard.
    LockGuard await_resume();
    void detach() noexcept override {
        if (lock_) lock_->waiters_.remove(*this);
    }

private:
    friend class Lock;
    Lock* lock_;  // null once the lock is destroyed
};

inline Lock::Awaiter Lock::acquire() noexcept { return Awaiter(*this); }

}  // namespace corio
