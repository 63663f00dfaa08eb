// asyncio.timeout / timeout_at / wait_for.
//
//   co_await corio::timeout(5s, [&](corio::Timeout& t) -> corio::Coro<T> { ... });
//   auto r = co_await corio::wait_for(reader.readline(), 5s);
//
// On expiry the timeout cancels its task; on the way out it turns that one cancellation,
// and only that one, into TimeoutError (an outer cancel stays a cancel; nested timeouts
// each convert only their own). wait_for is the same scope around a single await.
#pragma once

#include <coroutine>
#include <optional>
#include <type_traits>

#include "corio/clock.hpp"
#include "corio/coro.hpp"
#include "corio/detail/awaitable_traits.hpp"
#include "corio/detail/task_set_waiter.hpp"
#include "corio/loop.hpp"
#include "corio/sleep.hpp"
#include "corio/task.hpp"

namespace corio {

class Timeout {
public:
    explicit Timeout(std::optional<Clock::time_point> when) noexcept : when_(when) {}
    ~Timeout();
    Timeout(const Timeout&) = delete;
    Timeout& operator=(const Timeout&) = delete;

    std::optional<Clock::time_point> when() const noexcept { return when_; }
    // A new deadline (std::nullopt: none). Only while the scope is active.
    void reschedule(std::optional<Clock::time_point> when);
    bool expired() const noexcept { return state_ == State::Expiring || state_ == State::Expired; }

    // The scope's entry and exit (what timeout_at calls around the body).
    void enter();
    // May replace `error` (this timeout's own CancelledError) with TimeoutError.
    void exit(std::exception_ptr& error) noexcept;

private:
    // Due: the deadline has passed and the expiry waits in the ready queue, behind what was
    // already ready (as asyncio's timer handle does), so a result or a callback that came first
    // still counts; leaving the scope, or rescheduling, before it runs takes it back.
    enum class State { Created, Entered, Due, Expiring, Expired, Exited };
    struct Timer : detail::TimerNode {
        Timeout* self = nullptr;
    };
    static void on_timer(detail::TimerNode* t) noexcept;
    void expire() noexcept;
    void take_back_expiry() noexcept;

    std::optional<Clock::time_point> when_;
    State state_ = State::Created;
    Timer timer_;
    Handle due_;
    detail::TaskBase* task_ = nullptr;
    EventLoop* loop_ = nullptr;
    int entry_level_ = 0;
};

namespace detail {

template <class F>
struct timeout_body_result {
    using body_result = std::invoke_result_t<F&, Timeout&>;
    static_assert(is_coro<body_result>::value,
                  "timeout / timeout_at: the body must take Timeout& and return a corio::Coro<T>: "
                  "[&](corio::Timeout& t) -> corio::Coro<> { ...; co_return; }");
    using type = typename body_result::value_type;
};

template <class F>
using timeout_body_result_t = typename timeout_body_result<F>::type;

template <class F>
Coro<timeout_body_result_t<F>> timeout_scope(std::optional<Clock::time_point> at,
                                             std::optional<Clock::duration> delay, F body) {
    using R = timeout_body_result_t<F>;
    if (delay) at = deadline_after(get_running_loop().time(), *delay);
    Timeout scope(at);
    scope.enter();
    std::exception_ptr error;
    std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> result{};
    try {
        Coro<R> inner = body(scope);
        if constexpr (std::is_void_v<R>)
            co_await std::move(inner);
        else
            result.emplace(co_await std::move(inner));
    } catch (...) {
        error = std::current_exception();
    }
    scope.exit(error);
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

}  // namespace detail

// async with asyncio.timeout(delay): the scope form. std::nullopt: no deadline.
template <class F>
auto timeout(std::optional<Clock::duration> delay, F body) {
    return detail::timeout_scope(std::nullopt, delay, std::move(body));
}
// async with asyncio.timeout_at(deadline).
template <class F>
auto timeout_at(std::optional<Clock::time_point> deadline, F body) {
    return detail::timeout_scope(deadline, std::nullopt, std::move(body));
}

// asyncio.wait_for(aw, timeout): the result, or TimeoutError after cancelling `aw` and
// waiting for it to finish cancelling (if it swallows the cancel and returns, that value wins).
template <class Aw>
Coro<detail::await_result_t<Aw>> wait_for(Aw aw, std::optional<Clock::duration> limit) {
    using R = detail::await_result_t<Aw>;
    if (limit && *limit <= Clock::duration::zero()) {
        if constexpr (detail::is_coro<Aw>::value) {
            // A coroutine that has no time at all never starts (asyncio's eager-less rule).
            if (auto h = aw.release()) h.destroy();
            // asyncio still suspends here (it cancels the coroutine's task and waits for it):
            // other tasks get their turn, so a polling loop of wait_for(c, 0) cannot starve the
            // loop, and a cancellation already requested is raised instead of TimeoutError.
            auto one_tick = sleep(Clock::duration::zero());
            co_await one_tick;
            throw TimeoutError();
        } else if constexpr (detail::is_task<Aw>::value) {
            if (aw.done()) co_return co_await std::move(aw);
            aw.cancel();
            Coro<bool> waiting = detail::wait_all_absorbing({aw.state()});
            bool cancelled_meanwhile = co_await std::move(waiting);
            // Our own cancellation, which came while the task wound down, is not absorbed (P4).
            if (cancelled_meanwhile) {
                detail::require_task().cancel_delivered();
                throw CancelledError(detail::require_task().cancel_message());
            }
            if (!aw.cancelled()) co_return co_await std::move(aw);
            throw TimeoutError();
        }
    }
    auto body = [&aw](Timeout&) -> Coro<R> { co_return co_await std::move(aw); };
    Coro<R> scoped = timeout(limit, body);
    co_return co_await std::move(scoped);
}

}  // namespace corio
