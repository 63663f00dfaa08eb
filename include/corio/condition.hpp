// asyncio.Condition: wait for a notification while giving up a Lock, shared or owned.
//
// wait() re-acquires the lock on every way out, a cancellation included, so the caller's
// guard always holds what it believes it holds (CD3). A notified waiter that leaves with an
// exception passes its notification to the next waiter, so none is lost (CD4, gh-112202).
#pragma once

#include <type_traits>

#include "corio/coro.hpp"
#include "corio/detail/wait_node.hpp"
#include "corio/lock.hpp"

namespace corio {

class Condition {
public:
    // Owns its lock, or shares `lock` (a null pointer means: owns one).
    Condition() noexcept : lock_(&own_) {}
    explicit Condition(Lock& lock) noexcept : lock_(&lock) {}
    explicit Condition(Lock* lock) noexcept : lock_(lock ? lock : &own_) {}
    Condition(const Condition&) = delete;
    Condition& operator=(const Condition&) = delete;
    ~Condition();

    // co_await cond.acquire() -> LockGuard, over the underlying lock.
    Lock::Awaiter acquire() noexcept { return lock_->acquire(); }
    void release() { lock_->release(); }
    bool locked() const noexcept { return lock_->locked(); }

    // Releases the lock, waits for a notification, re-acquires the lock; returns true.
    // Throws std::logic_error if the lock is not held.
    Coro<bool> wait();
    // Waits until pred() is truthy and returns its value; returns at once, without needing
    // the lock, if it already is.
    template <class Pred>
    Coro<std::decay_t<std::invoke_result_t<Pred&>>> wait_for(Pred pred);

    // Wake up to n waiters (all). Throw std::logic_error if the lock is not held.
    void notify(int n = 1);
    void notify_all();

private:
    class Waiter;
    void wake_waiters(int n) noexcept;

    Lock own_;
    Lock* lock_;
    detail::WaitList waiters_;
};

template <class Pred>
Coro<std::decay_t<std::invoke_result_t<Pred&>>> Condition::wait_for(Pred pred) {
    std::decay_t<std::invoke_result_t<Pred&>> result = pred();
    while (!result) {
        Coro<bool> notified = wait();  // a named local, not a temporary (compiler-bugs.md G2)
        co_await std::move(notified);
        result = pred();
    }
    co_return result;
}

}  // namespace corio
