// What `co_await x` yields for any awaitable x, and how to turn Coros and Tasks into Tasks.
#pragma once

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

// Coros and Tasks: what gather, wait, shield and as_completed take.
template <class A>
concept TaskLike = is_coro<std::remove_cvref_t<A>>::value || is_task<std::remove_cvref_t<A>>::value;

template <class A>
using task_value_t = typename std::remove_cvref_t<A>::value_type;

template <class T>
Task<T> to_task(Coro<T> c, std::source_location where = std::source_location::current()) {
    return detail::spawn(get_running_loop(), std::move(c), {}, where);
}
template <class T>
Task<T> to_task(Task<T> t) {
    return t;
}

// void results are gathered as std::monostate (asyncio's None).
template <class T>
using gathered_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

}  // namespace corio::detail
