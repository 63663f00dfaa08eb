// Async context managers: `async with`, and contextlib's AsyncExitStack.
//
//   co_await corio::async_with(open_db(url), [&](Db& db) -> corio::Coro<> { ... });
//
// A resource type has `Coro<> aclose()`; async_with calls it on every exit path, cancellation
// included, and rethrows what the body threw (an exception from aclose() replaces it, as an
// exception in __aexit__ does).
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "corio/coro.hpp"
#include "corio/detail/awaitable_traits.hpp"
#include "corio/detail/wait_node.hpp"
#include "corio/generator.hpp"

namespace corio {

namespace detail {

template <class>
inline constexpr bool always_false = false;

template <class R>
Coro<> aclose_of(R& r) {
    if constexpr (requires { r.aclose(); })
        return r.aclose();
    else if constexpr (requires { r->aclose(); })
        return r->aclose();  // a pointer-like holder of a resource
    else
        static_assert(always_false<R>,
                      "async_with: the resource needs a `corio::Coro<> aclose()` member (asyncio's __aexit__), "
                      "or must be a pointer or handle to one that has it");
}

// No type when the body does not take an R& (the other async_with overload may fit).
template <class F, class R, class = void>
struct with_result {};

template <class F, class R>
struct with_result<F, R, std::enable_if_t<std::is_invocable_v<F&, R&>>> {
    using body_result = std::invoke_result_t<F&, R&>;
    static_assert(is_coro<body_result>::value,
                  "async_with: the body must return a corio::Coro<T>: write `-> corio::Coro<>` (or Coro<T>) on "
                  "the lambda, and end it with co_return");
    using type = typename body_result::value_type;
};

template <class F, class R>
using with_result_t = typename with_result<F, R>::type;

template <class R, class F>
Coro<with_result_t<F, R>> with_resource(R& resource, F& body) {
    using T = with_result_t<F, R>;
    std::exception_ptr error;
    std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> result{};
    try {
        Coro<T> inner = body(resource);
        if constexpr (std::is_void_v<T>)
            co_await std::move(inner);
        else
            result.emplace(co_await std::move(inner));
    } catch (...) {
        error = std::current_exception();
    }
    {
        // __aexit__ may take its time (a server waiting for its handlers): after a cancellation,
        // debug mode's swallowed-cancel check waits for it, as it waits for serve_forever's.
        CleanupAfterCancel cleaning;
        Coro<> closing = aclose_of(resource);
        co_await std::move(closing);
    }
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<T>) co_return std::move(*result);
}

}  // namespace detail

// async with <acquire> as r: body(r)
template <class R, class F>
Coro<detail::with_result_t<F, R>> async_with(Coro<R> acquire, F body) {
    R resource = co_await std::move(acquire);
    Coro<detail::with_result_t<F, R>> scoped = detail::with_resource(resource, body);
    co_return co_await std::move(scoped);
}

// async with r: body(r), for a resource that is already there (an AsyncExitStack, say).
namespace detail {
template <class R>
struct is_async_generator : std::false_type {};
template <class T>
struct is_async_generator<AsyncGenerator<T>> : std::true_type {};
}  // namespace detail

template <class R, class F>
    requires(!detail::is_coro<std::remove_cvref_t<R>>::value && !detail::is_async_generator<std::remove_cvref_t<R>>::value)
Coro<detail::with_result_t<F, R>> async_with(R resource, F body) {
    Coro<detail::with_result_t<F, R>> scoped = detail::with_resource(resource, body);
    co_return co_await std::move(scoped);
}

// @asynccontextmanager: the generator runs to its single co_yield (the resource), the body
// runs, then the generator resumes to finish its cleanup. An exception from the body is
// thrown in at the co_yield: if the generator then finishes normally the exception is
// suppressed, otherwise what it throws propagates (contextlib's rules, CM1).
template <class T, class F>
    requires std::is_same_v<typename std::invoke_result_t<F&, T&>, Coro<>>
Coro<> async_with(AsyncGenerator<T> manager, F body) {
    std::optional<T> resource = co_await manager.next();
    if (!resource) throw std::logic_error("generator didn't yield");
    std::exception_ptr error;
    try {
        Coro<> inner = body(*resource);
        co_await inner;
    } catch (...) {
        error = std::current_exception();
    }
    // A generator that yields again is closed before the error leaves (contextlib raises it in
    // a try whose finally awaits gen.aclose()): its cleanup must not outlive this scope, whose
    // locals it may use. An error from that cleanup replaces this one, as it would there.
    // Debug mode waits for this __aexit__ after a cancellation, as for the class form's.
    detail::CleanupAfterCancel cleaning;
    const char* misuse = nullptr;
    if (!error) {
        auto more = co_await manager.next();
        if (!more) co_return;
        misuse = "generator didn't stop";
    } else {
        auto more = co_await manager.athrow(error);  // finishing normally suppresses `error`
        if (!more) co_return;
        misuse = "generator didn't stop after athrow()";
    }
    Coro<> closing = manager.aclose();
    co_await std::move(closing);
    throw std::logic_error(misuse);
}

// contextlib.AsyncExitStack: resources and callbacks closed in reverse order by aclose().
class AsyncExitStack {
public:
    AsyncExitStack() = default;
    AsyncExitStack(AsyncExitStack&&) = default;
    AsyncExitStack& operator=(AsyncExitStack&&) = default;
    ~AsyncExitStack() = default;

    // Acquires a resource; the stack owns it and closes it with aclose().
    template <class R>
    Coro<R*> enter_async_context(Coro<R> acquire) {
        auto holder = std::make_unique<Holder<R>>(co_await std::move(acquire));
        R* r = &holder->resource;
        exits_.push_back(std::move(holder));
        co_return r;
    }
    // f() -> Coro<> runs at close.
    template <class F>
    void push_async_callback(F f) {
        exits_.push_back(std::make_unique<CallbackExit<F>>(std::move(f)));
    }
    // Runs every exit, last in first out. An exit that throws does not stop the others; the
    // last exception is rethrown at the end.
    Coro<> aclose();

private:
    struct Exit {
        virtual ~Exit() = default;
        virtual Coro<> run() = 0;
    };
    template <class R>
    struct Holder final : Exit {
        explicit Holder(R r) : resource(std::move(r)) {}
        Coro<> run() override { return detail::aclose_of(resource); }
        R resource;
    };
    template <class F>
    struct CallbackExit final : Exit {
        explicit CallbackExit(F f) : fn(std::move(f)) {}
        Coro<> run() override { return fn(); }
        F fn;
    };
    std::vector<std::unique_ptr<Exit>> exits_;
};

}  // namespace corio
