// Future<T>: the low-level awaitable that bridges callback APIs (loop.create_future()).
#pragma once

#include "corio/detail/task_base.hpp"
#include "corio/loop.hpp"

namespace corio {

namespace detail {
template <class T>
class FutureState final : public FutureBase, public ResultSlot<T> {
public:
    explicit FutureState(EventLoop* loop) noexcept : FutureBase(loop), loop_serial_(loop ? loop->serial() : 0) {}
    ~FutureState() override {
        this->destroy(state());
    }
    template <class... A>
    void set_result(A&&... v) {
        if (done()) throw InvalidStateError("invalid state: the future is already done");
        if (has_waiters()) check_loop_open();  // its done callbacks could not be scheduled
        if constexpr (!std::is_void_v<T>) this->emplace(std::forward<A>(v)...);
        finish(State::Succeeded, nullptr);
    }
    void set_exception(std::exception_ptr e) {
        if (done()) throw InvalidStateError("invalid state: the future is already done");
        if (!e) throw std::invalid_argument("set_exception() needs an exception, not a null exception_ptr");
        if (is_cancellation(e)) throw std::invalid_argument("use cancel() to cancel a future");
        if (has_waiters()) check_loop_open();
        finish(State::Failed, std::move(e));
    }

private:
    std::exception_ptr& error_slot() noexcept override { return this->error(); }
    std::uint64_t loop_serial() const noexcept override { return loop_serial_; }
    std::uint64_t loop_serial_;
};
}  // namespace detail

template <class T>
class Future {
public:
    Future() = default;
    explicit Future(EventLoop& loop) : ref_(new detail::FutureState<T>(&loop)) {}

    template <class... A>
    void set_result(A&&... v) { ref_->set_result(std::forward<A>(v)...); }
    void set_exception(std::exception_ptr e) { ref_->set_exception(std::move(e)); }
    template <class E>
    void set_exception(E e) { ref_->set_exception(std::make_exception_ptr(std::move(e))); }
    bool cancel(std::string message = {}) { return ref_->cancel(std::move(message)); }
    bool done() const noexcept { return ref_->done(); }
    bool cancelled() const noexcept { return ref_->cancelled(); }
    std::exception_ptr exception() const { return ref_->exception(); }
    decltype(auto) result() const {
        if (!done()) throw InvalidStateError("Result is not ready.");
        ref_->rethrow_if_failed();
        if constexpr (!std::is_void_v<T>) {
            if constexpr (!std::is_copy_constructible_v<T>) ref_->check_move_only_result();
            return static_cast<const T&>(ref_->value());
        }
    }
    // f(future), as asyncio calls it, or f(), is called (through call_soon) once done. The
    // handle f gets is made then: f need not capture the future, so a future that never
    // completes is not kept alive by its own callback.
    template <class F>
    void add_done_callback(F f) {
        if constexpr (std::is_invocable_v<F&, Future&>) {
            ref_->add_done_callback(detail::BasicCallback<detail::FutureBase&>([f = std::move(f)](detail::FutureBase& s) mutable {
                auto* typed = static_cast<detail::FutureState<T>*>(&s);
                typed->add_ref();
                Future done(typed);
                f(done);
            }));
        } else {
            static_assert(std::is_invocable_v<F&>, "add_done_callback(f): f must take the future, or nothing");
            ref_->add_done_callback(detail::Callback(std::move(f)));
        }
    }

    using Awaiter = detail::FutureAwaiter<T, detail::FutureState<T>>;
    Awaiter operator co_await() const& noexcept { return Awaiter(ref_.get(), false); }
    Awaiter operator co_await() && noexcept { return Awaiter(ref_.get(), true); }

private:
    explicit Future(detail::FutureState<T>* adopted) noexcept : ref_(adopted) {}
    detail::StateRef<detail::FutureState<T>> ref_;
};

template <class T>
Future<T> EventLoop::create_future() {
    return Future<T>(*this);
}

}  // namespace corio
