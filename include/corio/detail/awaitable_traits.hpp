// What `co_await x` yields for any awaitable x, and how to turn Coros and Tasks into Tasks.
#pragma once

#include <concepts>
#include <type_traits>
#include <utility>
#include <variant>

#include "corio/coro.hpp"
#include "corio/task.hpp"

namespace corio::detail {

template <class A>
decltype(auto) get_awaiter(A&& a) {
    if constexpr (requires { std::forward<A>(a).operator co_await(); })
        return std::forward<A>(a).operator co_await();
    else if constexpr (requires { operator co_await(std::forward<A>(a)); })
        return operator co_await(std::forward<A>(a));
    else
        return std::forward<A>(a);
}

template <class A>
using await_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

template <class A>
struct is_coro : std::false_type {};
template <class T>
struct is_coro<Coro<T>> : std::true_type {};
template <class A>
struct is_task : std::false_type {};
template <class T>
struct is_task<Task<T>> : std::true_type {};

template <class A>
concept Awaitable = requires(A a) { get_awaiter(std::move(a)).await_ready(); };

// What gather, wait, shield and as_completed take: Coros and Tasks, and any other awaitable
// that can be moved (a Future, ev.wait(), q.get()...), which runs as a task of its own, as
// asyncio's ensure_future() makes one of any awaitable.
template <class A>
concept TaskLike = is_coro<std::remove_cvref_t<A>>::value || is_task<std::remove_cvref_t<A>>::value ||
                   (Awaitable<std::remove_cvref_t<A>> && std::move_constructible<std::remove_cvref_t<A>>);

// No `type` for what is not awaitable, so that a call with one (gather(std::vector<...>) picking
// the pack overload) is a substitution failure and not a hard error.
template <class A>
struct task_value {};
template <class A>
    requires(Awaitable<A> && !is_coro<A>::value && !is_task<A>::value)
struct task_value<A> {
    using type = await_result_t<A>;
};
template <class T>
struct task_value<Coro<T>> {
    using type = T;
};
template <class T>
struct task_value<Task<T>> {
    using type = T;
};
template <class A>
using task_value_t = typename task_value<std::remove_cvref_t<A>>::type;

template <class T>
Task<T> to_task(Coro<T> c, std::source_location where = std::source_location::current()) {
    return detail::spawn(get_running_loop(), std::move(c), {}, where);
}
template <class T>
Task<T> to_task(Task<T> t) {
    return t;
}

template <class R, class Aw>
Coro<R> await_as_coro(Aw aw) {
    if constexpr (std::is_void_v<R>)
        co_await std::move(aw);
    else
        co_return co_await std::move(aw);
}
template <class Aw>
    requires(!is_coro<Aw>::value && !is_task<Aw>::value && Awaitable<Aw>)
Task<await_result_t<Aw>> to_task(Aw aw, std::source_location where = std::source_location::current()) {
    Coro<await_result_t<Aw>> body = await_as_coro<await_result_t<Aw>>(std::move(aw));
    return detail::spawn(get_running_loop(), std::move(body), {}, where);
}

// void results are gathered as std::monostate (asyncio's None).
template <class T>
using gathered_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

}  // namespace corio::detail
