#include "corio/condition.hpp"

#include <exception>
#include <limits>
#include <stdexcept>

#include "corio/errors.hpp"

namespace corio {

// Waits on the condition's own list; `notified` tells a notify() from a cancellation.
class Condition::Waiter final : public detail::ListedWaitNode {
public:
    explicit Waiter(Condition& c) noexcept : cond_(c) {}
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;
    ~Waiter() { cond_.waiters_.remove(*this); }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
        if (!suspend(h)) return true;  // woken already, to take a pending cancellation
        cond_.waiters_.push_back(*this);
        return true;
    }
    void await_resume() const { throw_if_cancelled(); }
    void detach() noexcept override { cond_.waiters_.remove(*this); }

    bool notified = false;

private:
    Condition& cond_;
};

Condition::~Condition() {
    while (waiters_.pop_front()) {
    }
}

Coro<bool> Condition::wait() {
    if (!lock_->held()) throw std::logic_error("cannot wait on un-acquired lock");
    release();

    std::exception_ptr error;
    bool notified = false;
    {
        Waiter waiter(*this);
        try {
            co_await waiter;
        } catch (...) {
            error = std::current_exception();
        }
        notified = waiter.notified;
    }

    // Cancellations that land while re-acquiring are absorbed (the caller must get the lock
    // back whatever happens); the latest one is the one re-thrown, as asyncio does.
    detail::CleanupAfterCancel cleaning;
    for (;;) {
        try {
            LockGuard relocked = co_await lock_->acquire();
            relocked.dismiss();
            break;
        } catch (const CancelledError&) {
            error = std::current_exception();
        }
    }

    if (error) {
        // We consumed a notification but will not act on it: hand it to the next waiter.
        if (notified) wake_waiters(1);
        std::rethrow_exception(error);
    }
    co_return true;
}

void Condition::notify(int n) {
    if (!lock_->held()) throw std::logic_error("cannot notify on un-acquired lock");
    wake_waiters(n);
}

void Condition::notify_all() { notify(std::numeric_limits<int>::max()); }

void Condition::wake_waiters(int n) noexcept {
    for (; n > 0; --n) {
        auto* w = static_cast<Waiter*>(waiters_.pop_front());
        if (!w) return;
        w->notified = true;
        w->wake();
    }
}

}  // namespace corio
