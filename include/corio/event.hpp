// asyncio.Event: set() wakes every current waiter, in the order they began to wait.
#pragma once

#include <coroutine>
#include <utility>

#include "corio/detail/wait_node.hpp"

namespace corio {

class Event {
public:
    class Awaiter;

    Event() = default;
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    ~Event();

    // co_await ev.wait() -> true, at once if the event is set.
    Awaiter wait() noexcept;
    // Wakes all waiters. A waiter once woken stays woken: clear() does not take it back (EV3).
    void set() noexcept;
    void clear() noexcept { set_ = false; }
    bool is_set() const noexcept { return set_; }

private:
    friend class Awaiter;
    bool set_ = false;
    detail::WaitList waiters_;
};

class Event::Awaiter final : public detail::ListedWaitNode {
public:
    explicit Awaiter(Event& ev) noexcept : ev_(ev) {}
    // Movable until awaited, so that wait_for(ev.wait(), t) can take it.
    Awaiter(Awaiter&& other) noexcept : ListedWaitNode(std::move(other)), ev_(other.ev_) {}
    ~Awaiter() { ev_.waiters_.remove(*this); }

    bool await_ready() const noexcept { return ev_.set_; }
    bool await_suspend(std::coroutine_handle<> h) {
        if (!suspend(h)) return true;  // woken already, to take a pending cancellation
        ev_.waiters_.push_back(*this);
        return true;
    }
    // A wake-up from set() is shared by all waiters, so a cancelled one has nothing to hand on.
    bool await_resume() const {
        throw_if_cancelled();
        return true;
    }
    void detach() noexcept override { ev_.waiters_.remove(*this); }

private:
    Event& ev_;
};

inline Event::Awaiter Event::wait() noexcept { return Awaiter(*this); }

}  // namespace corio
