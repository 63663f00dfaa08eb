// asyncio.gather: run awaitables concurrently, results in argument order.
//
//   auto both = co_await corio::gather(fetch("a"), fetch("b"));          // a tuple
//   auto& [a, b] = both;
//   std::vector<R> all = co_await corio::gather(std::move(coros));         // a range
//   auto outcomes = co_await corio::gather(corio::return_exceptions, f(), g());  // Outcome<R>s
//
// Without return_exceptions the first failure cancels the others, waits for them, then is
// rethrown (asyncio leaves them running: corio differs). Cancelling the gather cancels all.
#pragma once

#include <exception>
#include <tuple>
#include <variant>
#include <vector>

#include "corio/coro.hpp"
#include "corio/detail/awaitable_traits.hpp"
#include "corio/task.hpp"

namespace corio {

struct return_exceptions_t {
    explicit return_exceptions_t() = default;
};
inline constexpr return_exceptions_t return_exceptions{};

// A result or the exception that took its place.
template <class T>
class Outcome {
public:
    Outcome() = default;
    explicit Outcome(std::exception_ptr e) : v_(std::move(e)) {}
    template <class... A>
    explicit Outcome(std::in_place_t, A&&... a) : v_(std::in_place_index<1>, std::forward<A>(a)...) {}

    bool has_value() const noexcept { return v_.index() == 1; }
    explicit operator bool() const noexcept { return has_value(); }
    T& value() & {
        if (!has_value()) std::rethrow_exception(error());
        return std::get<1>(v_);
    }
    T&& value() && {
        if (!has_value()) std::rethrow_exception(error());
        return std::move(std::get<1>(v_));
    }
    std::exception_ptr error() const noexcept { return v_.index() == 2 ? std::get<2>(v_) : nullptr; }

private:
    std::variant<std::monostate, T, std::exception_ptr> v_;
};

template <>
class Outcome<void> {
public:
    Outcome() = default;
    explicit Outcome(std::exception_ptr e) : e_(std::move(e)) {}
    bool has_value() const noexcept { return !e_; }
    explicit operator bool() const noexcept { return has_value(); }
    void value() const {
        if (e_) std::rethrow_exception(e_);
    }
    std::exception_ptr error() const noexcept { return e_; }

private:
    std::exception_ptr e_;
};

namespace detail {

// Waits for the children as gather's contract says; throws what gather throws.
Coro<> gather_wait(std::vector<FutureBase*> children, bool return_exceptions);

template <class T>
gathered_t<T> take_gathered(Task<T>& t) {
    if constexpr (std::is_void_v<T>) {
        t.typed()->rethrow_if_failed();
        return std::monostate{};
    } else {
        return detail::take_result<T>(*t.typed(), !std::is_copy_constructible_v<T>);
    }
}

template <class T>
Outcome<T> take_outcome(Task<T>& t) {
    auto* s = t.typed();
    s->mark_retrieved();
    if (s->state() != FutureBase::State::Succeeded) {
        try {
            s->rethrow_if_failed();
        } catch (...) {
            return Outcome<T>(std::current_exception());
        }
    }
    if constexpr (std::is_void_v<T>)
        return Outcome<void>();
    else
        return Outcome<T>(std::in_place, detail::take_result<T>(*s, !std::is_copy_constructible_v<T>));
}

template <class... Ts>
std::vector<FutureBase*> states_of(std::tuple<Task<Ts>...>& tasks) {
    return std::apply([](auto&... t) { return std::vector<FutureBase*>{t.state()...}; }, tasks);
}

template <class T>
std::vector<FutureBase*> states_of(std::vector<Task<T>>& tasks) {
    std::vector<FutureBase*> out;
    out.reserve(tasks.size());
    for (auto& t : tasks) out.push_back(t.state());
    return out;
}

template <class... Ts>
Coro<std::tuple<gathered_t<Ts>...>> gather_tuple(std::tuple<Task<Ts>...> tasks) {
    Coro<> waiting = gather_wait(states_of(tasks), false);
    co_await std::move(waiting);
    co_return std::apply([](auto&... t) { return std::tuple<gathered_t<Ts>...>(take_gathered(t)...); }, tasks);
}

template <class... Ts>
Coro<std::tuple<Outcome<Ts>...>> gather_tuple_outcomes(std::tuple<Task<Ts>...> tasks) {
    Coro<> waiting = gather_wait(states_of(tasks), true);
    co_await std::move(waiting);
    co_return std::apply([](auto&... t) { return std::tuple<Outcome<Ts>...>(take_outcome(t)...); }, tasks);
}

template <class T>
Coro<std::vector<gathered_t<T>>> gather_range(std::vector<Task<T>> tasks) {
    Coro<> waiting = gather_wait(states_of(tasks), false);
    co_await std::move(waiting);
    std::vector<gathered_t<T>> out;
    out.reserve(tasks.size());
    for (auto& t : tasks) out.push_back(take_gathered(t));
    co_return out;
}

template <class T>
Coro<std::vector<Outcome<T>>> gather_range_outcomes(std::vector<Task<T>> tasks) {
    Coro<> waiting = gather_wait(states_of(tasks), true);
    co_await std::move(waiting);
    std::vector<Outcome<T>> out;
    out.reserve(tasks.size());
    for (auto& t : tasks) out.push_back(take_outcome(t));
    co_return out;
}

template <class A>
std::vector<Task<task_value_t<A>>> to_tasks(std::vector<A> items) {
    std::vector<Task<task_value_t<A>>> out;
    out.reserve(items.size());
    for (auto& a : items) out.push_back(to_task(std::move(a)));
    return out;
}

// The children run as tasks whether or not the gather is awaited (asyncio's gather returns a
// future): dropping it unawaited is no forgotten coroutine, and debug mode says nothing.
template <class C>
C quiet_when_dropped(C gathering) noexcept {
    gathering.handle().promise().quiet_when_dropped = true;
    return gathering;
}

}  // namespace detail

// Coros become tasks at once (asyncio wraps them in gather's call); Tasks are used as they are.
template <detail::TaskLike... A>
Coro<std::tuple<detail::gathered_t<detail::task_value_t<A>>...>> gather(A... aws) {
    // A braced list: its elements are evaluated left to right (a call's arguments are not, and
    // g++ made the tasks right to left), so the children are scheduled in argument order.
    return detail::quiet_when_dropped(
        detail::gather_tuple(std::tuple<Task<detail::task_value_t<A>>...>{detail::to_task(std::move(aws))...}));
}

template <detail::TaskLike... A>
Coro<std::tuple<Outcome<detail::task_value_t<A>>...>> gather(return_exceptions_t, A... aws) {
    return detail::quiet_when_dropped(
        detail::gather_tuple_outcomes(std::tuple<Task<detail::task_value_t<A>>...>{detail::to_task(std::move(aws))...}));
}

template <detail::TaskLike A>
Coro<std::vector<detail::gathered_t<detail::task_value_t<A>>>> gather(std::vector<A> aws) {
    return detail::quiet_when_dropped(detail::gather_range(detail::to_tasks(std::move(aws))));
}

template <detail::TaskLike A>
Coro<std::vector<Outcome<detail::task_value_t<A>>>> gather(return_exceptions_t, std::vector<A> aws) {
    return detail::quiet_when_dropped(detail::gather_range_outcomes(detail::to_tasks(std::move(aws))));
}

}  // namespace corio
