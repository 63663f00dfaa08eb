// Coro<T>: the coroutine type, asyncio's `async def`. Lazy: calling the function runs
// nothing; the body runs when the Coro is awaited or wrapped in a task.
#pragma once

#include <coroutine>
#include <new>
#include <source_location>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "corio/detail/promise_base.hpp"

namespace corio {

template <class T = void>
class [[nodiscard]] Coro;

namespace detail {

template <class T>
struct ValuePromise : PromiseBase {
    explicit ValuePromise(std::source_location loc) noexcept : PromiseBase(loc) {}
    ValuePromise(const ValuePromise&) = delete;
    ValuePromise& operator=(const ValuePromise&) = delete;
    ~ValuePromise() { clear(); }
    template <class U = T>
        requires std::is_convertible_v<U&&, T>
    void return_value(U&& v) {
        clear();
        ::new (static_cast<void*>(&value_)) T(std::forward<U>(v));
        outcome = Outcome::Value;
    }
    void set_error(std::exception_ptr e) noexcept {
        clear();
        ::new (static_cast<void*>(&error_)) std::exception_ptr(std::move(e));
        outcome = Outcome::Error;
    }
    std::exception_ptr error() const noexcept { return outcome == Outcome::Error ? error_ : nullptr; }
    T take() {
        if (outcome == Outcome::Error) std::rethrow_exception(error_);
        return std::move(value_);
    }
    // The result of a frame that finished without an exception.
    T&& take_value() noexcept { return std::move(value_); }

private:
    void clear() noexcept {
        if (outcome == Outcome::Value) value_.~T();
        if (outcome == Outcome::Error) error_.~exception_ptr();
        outcome = Outcome::None;
    }
    // Not std::optional or std::variant: their flags would cost a frame 8 bytes, and the
    // outcome flag is in PromiseBase's padding.
    union {
        T value_;
        std::exception_ptr error_;
    };
};

template <>
struct ValuePromise<void> : PromiseBase {
    explicit ValuePromise(std::source_location loc) noexcept : PromiseBase(loc) {}
    void return_void() noexcept {}
    void set_error(std::exception_ptr e) noexcept {
        error_ = std::move(e);
        outcome = Outcome::Error;
    }
    std::exception_ptr error() const noexcept { return error_; }
    void take() {
        if (error_) std::rethrow_exception(error_);
    }

private:
    std::exception_ptr error_;
};

}  // namespace detail

template <class T>
class [[nodiscard]] Coro {
public:
    using value_type = T;

    struct promise_type : detail::ValuePromise<T> {
        // The default argument is evaluated where the compiler makes the promise: in the
        // coroutine's own ramp, so it names the coroutine function (for call graphs).
        promise_type(std::source_location loc = std::source_location::current()) noexcept
            : detail::ValuePromise<T>(loc) {}
        Coro get_return_object() noexcept {
            return Coro(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        detail::InitialSuspend initial_suspend() noexcept { return {}; }
        detail::FinalSuspend final_suspend() noexcept { return {}; }
        void unhandled_exception() noexcept { this->set_error(std::current_exception()); }
    };
    using handle_type = std::coroutine_handle<promise_type>;

    Coro() noexcept = default;
    Coro(Coro&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    Coro& operator=(Coro&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    Coro(const Coro&) = delete;
    Coro& operator=(const Coro&) = delete;
    ~Coro() { reset(); }

    explicit operator bool() const noexcept { return bool(h_); }
    bool done() const noexcept { return h_ && h_.done(); }

    struct Awaiter {
        handle_type h;
        detail::PromiseBase* parent = nullptr;

        bool await_ready() const noexcept { return false; }
        template <class P>
        bool await_suspend(std::coroutine_handle<P> caller) {
            auto& p = h.promise();
            p.continuation = caller;
            if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
                parent = &caller.promise();
                parent->awaiting = &p;
            }
            // Suspend only if the child did; a synchronously finished child lets the
            // caller go on in this very stack frame (see PromiseBase::inline_mode).
            return !detail::PromiseBase::run_inline(h, p);
        }
        T await_resume() {
            if (parent) parent->awaiting = nullptr;
            return h.promise().take();
        }
    };

    Awaiter operator co_await() && { return Awaiter{take_for_await()}; }
    Awaiter operator co_await() & { return Awaiter{take_for_await()}; }

    // For the task machinery: hands the frame over.
    handle_type release() noexcept { return std::exchange(h_, {}); }
    handle_type handle() const noexcept { return h_; }

private:
    explicit Coro(handle_type h) noexcept : h_(h) {}

    handle_type take_for_await() {
        if (!h_) throw std::logic_error("corio: awaiting an empty or already awaited Coro");
        if (h_.promise().started) throw std::logic_error("corio: a Coro can be awaited only once");
        return h_;
    }
    void reset() noexcept {
        if (h_) {
            if (!h_.promise().started && !h_.promise().quiet_when_dropped) detail::report_never_awaited(h_.promise());
            h_.destroy();
            h_ = {};
        }
    }

    handle_type h_;
};

}  // namespace corio
