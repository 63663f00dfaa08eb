// The state every Future and Task shares: asyncio's future state machine (pending, then one of
// succeeded, failed, cancelled), its waiters, and the never-retrieved exception report.
#pragma once

#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "corio/detail/callback.hpp"
#include "corio/detail/frame_alloc.hpp"
#include "corio/detail/intrusive_list.hpp"
#include "corio/errors.hpp"

namespace corio {
class EventLoop;
}

namespace corio::detail {

class FutureBase;
struct CompletionTag;

// Told, inline on the loop thread, when a future completes. Internal waiters only schedule
// work (wake a task, count a completion); user callbacks go through call_soon.
struct CompletionWaiter : ListHook<CompletionTag> {
    virtual void on_future_done(FutureBase& f) = 0;

protected:
    ~CompletionWaiter() = default;
};

class FutureBase : public Recycled {
public:
    enum class State : std::uint8_t { Pending, Succeeded, Failed, Cancelled };

    explicit FutureBase(EventLoop* loop) noexcept : loop_(loop) {}
    FutureBase(const FutureBase&) = delete;
    FutureBase& operator=(const FutureBase&) = delete;

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) release_slow();
    }

    State state() const noexcept { return state_; }
    // Only one handle refers to this state (a result may then be moved out, not copied).
    bool unique() const noexcept { return refs_ == 1; }
    std::uint32_t use_count() const noexcept { return refs_; }
    bool done() const noexcept { return state_ != State::Pending; }
    bool cancelled() const noexcept { return state_ == State::Cancelled; }
    EventLoop* loop() const noexcept { return loop_; }
    void detach_loop() noexcept { loop_ = nullptr; }

    // asyncio's exception(): nullptr on success; throws CancelledError when cancelled and
    // InvalidStateError while pending. Marks the exception retrieved.
    std::exception_ptr exception();
    // Throws what the future failed with (or its CancelledError); marks it retrieved.
    void rethrow_if_failed();
    // True when exception() / result() was asked for (the never-retrieved report is off).
    void mark_retrieved() noexcept { flags_ |= kRetrieved; }
    // A result that cannot be copied is moved out to its first taker; a later one is refused
    // (std::logic_error) instead of getting a moved-from value.
    void take_move_only_result() {
        if (flags_ & kTaken) throw std::logic_error("the result of a move-only type was already taken");
        flags_ |= kTaken;
    }
    void check_move_only_result() const {
        if (flags_ & kTaken) throw std::logic_error("the result of a move-only type was already taken");
    }

    virtual bool cancel(std::string message);

    void add_waiter(CompletionWaiter& w) noexcept { waiters_.push_back(w); }
    void remove_waiter(CompletionWaiter& w) noexcept { waiters_.remove(w); }
    // User done-callback: scheduled with call_soon once done (at once if already done).
    void add_done_callback(Callback cb);
    // The same, told which future completed (asyncio's fn(fut)): it holds a reference to this
    // state only from completion until it has run.
    void add_done_callback(BasicCallback<FutureBase&> cb);
    bool loop_still_there() const noexcept;  // not destroyed, nor replaced at its address
    bool loop_open() const noexcept;
    // Throws std::logic_error("Event loop is closed") unless the future's loop is open.
    void check_loop_open() const;

    virtual std::string describe() const { return "Future"; }

protected:
    virtual ~FutureBase();
    // Completes the future: wakes the waiters, schedules the callbacks.
    void finish(State s, std::exception_ptr e) noexcept;
    void report_unretrieved() noexcept;
    bool has_waiters() const noexcept { return !waiters_.empty(); }
    void release_slow() noexcept;

    // The exception's place, in the typed state's ResultSlot: valid once Failed or Cancelled
    // (finish() constructs it there).
    virtual std::exception_ptr& error_slot() noexcept = 0;
    // The serial of the loop the future was made on (EventLoop::serial()); 0 when not kept.
    virtual std::uint64_t loop_serial() const noexcept { return 0; }
    std::exception_ptr* error_if_any() noexcept {
        return state_ == State::Failed || state_ == State::Cancelled ? &error_slot() : nullptr;
    }

    EventLoop* loop_;
    IntrusiveList<CompletionWaiter, CompletionTag> waiters_;
    std::uint32_t refs_ = 1;
    State state_ = State::Pending;
    enum : std::uint8_t { kRetrieved = 1, kTaken = 16 };  // 2, 4, 8 are the task's (see TaskBase)
    std::uint8_t flags_ = 0;
    // A task's cancel-request count lives here, in what would be padding: a million tasks feel
    // every 8 bytes.
    std::uint16_t task_cancel_requests_ = 0;

    bool retrieved() const noexcept { return (flags_ & kRetrieved) != 0; }
};

// The outcome of a Future or Task: the result, constructed exactly when the state is
// Succeeded, or the exception, exactly when it is Failed or Cancelled. One union, as a future
// has one or the other (the state is the flag, so nobody pays for std::optional's or
// std::variant's).
template <class T>
class ResultSlot {
public:
    ResultSlot() noexcept {}
    ResultSlot(const ResultSlot&) = delete;
    ResultSlot& operator=(const ResultSlot&) = delete;
    ~ResultSlot() {}

    template <class... A>
    void emplace(A&&... a) {
        ::new (static_cast<void*>(&value_)) T(std::forward<A>(a)...);
    }
    T& value() noexcept { return value_; }
    const T& value() const noexcept { return value_; }
    std::exception_ptr& error() noexcept { return error_; }
    void destroy(FutureBase::State s) noexcept {
        if (s == FutureBase::State::Succeeded) value_.~T();
        else if (s != FutureBase::State::Pending) error_.~exception_ptr();
    }

private:
    union {
        T value_;
        std::exception_ptr error_;
    };
};
template <>
class ResultSlot<void> {
public:
    ResultSlot() noexcept {}
    ResultSlot(const ResultSlot&) = delete;
    ResultSlot& operator=(const ResultSlot&) = delete;
    ~ResultSlot() {}
    std::exception_ptr& error() noexcept { return error_; }
    void destroy(FutureBase::State s) noexcept {
        if (s == FutureBase::State::Failed || s == FutureBase::State::Cancelled) error_.~exception_ptr();
    }

private:
    union {
        std::exception_ptr error_;
    };
};

template <class T, class S>
T take_result(S& s, bool move_out) {
    s.rethrow_if_failed();
    if constexpr (!std::is_void_v<T>) {
        if constexpr (std::is_copy_constructible_v<T>) {
            if (!move_out) return s.value();
        } else {
            s.take_move_only_result();
        }
        return std::move(s.value());
    }
}

// An intrusive, copyable reference to a FutureBase-derived state.
template <class S>
class StateRef {
public:
    StateRef() = default;
    explicit StateRef(S* s) noexcept : s_(s) {}  // adopts a reference
    StateRef(const StateRef& o) noexcept : s_(o.s_) {
        if (s_) s_->add_ref();
    }
    StateRef(StateRef&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    StateRef& operator=(StateRef o) noexcept {
        std::swap(s_, o.s_);
        return *this;
    }
    ~StateRef() {
        if (s_) s_->release();
    }
    S* get() const noexcept { return s_; }
    S* operator->() const noexcept { return s_; }
    explicit operator bool() const noexcept { return s_ != nullptr; }
    friend bool operator==(const StateRef& a, const StateRef& b) noexcept { return a.s_ == b.s_; }

private:
    S* s_ = nullptr;
};

}  // namespace corio::detail
