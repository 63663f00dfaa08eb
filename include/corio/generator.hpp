// AsyncGenerator<T>: asyncio's async generators (`async def ... yield`).
//
//   corio::AsyncGenerator<Row> stream_rows(std::string q) { ... co_yield row; ... }
//   auto rows = stream_rows("SELECT ...");
//   while (auto row = co_await rows.next()) process(*row);   // async for row in ...
//   co_await rows.aclose();                                   // runs the generator's cleanup
//
// The body may co_await; it runs inside the task that calls next(). A generator left early
// is closed by aclose() (GeneratorExit is thrown at its co_yield, so its catch/cleanup code
// may co_await), or, when its owner drops it, by a task the loop starts for that purpose, or
// at the latest by corio::run's shutdown (asyncio's shutdown_asyncgens).
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "corio/coro.hpp"
#include "corio/detail/asyncgen_record.hpp"
#include "corio/detail/promise_base.hpp"
#include "corio/loop.hpp"
#include "corio/task.hpp"

namespace corio {

namespace detail {
// The name of the task that closes a generator dropped mid-iteration (the test harness waits for
// these as part of a test's cleanup).
inline constexpr const char* kAsyncGenCloserName = "asyncgen-aclose";
}  // namespace detail

template <class T>
class [[nodiscard]] AsyncGenerator {
public:
    using value_type = T;

    struct promise_type : detail::PromiseBase, detail::AsyncGenRecord {
        promise_type(std::source_location loc = std::source_location::current()) noexcept
            : detail::PromiseBase(loc) {}
        ~promise_type() {
            if (loop) loop->unregister_async_gen(*this);
        }
        AsyncGenerator get_return_object() noexcept {
            return AsyncGenerator(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        detail::InitialSuspend initial_suspend() noexcept { return {}; }
        detail::FinalSuspend final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { exception = std::current_exception(); }

        struct YieldAwaiter {
            promise_type& p;
            bool await_ready() const noexcept { return false; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<>) noexcept { return p.transfer_out(); }
            void await_resume() {
                if (p.inject) std::rethrow_exception(std::exchange(p.inject, nullptr));
            }
        };
        template <class U = T>
            requires std::is_convertible_v<U&&, T>
        YieldAwaiter yield_value(U&& v) {
            current.emplace(std::forward<U>(v));
            return YieldAwaiter{*this};
        }

        Coro<> close_from_loop() override {
            return close_and_free(CloseClaim(std::coroutine_handle<promise_type>::from_promise(*this)));
        }
        bool wants_closing() const noexcept override {
            auto h = std::coroutine_handle<promise_type>::from_promise(const_cast<promise_type&>(*this));
            return !closing && !close_attempted && started && !closed && !h.done();
        }
        void loop_closing() noexcept override {
            if (owned_by_loop) std::coroutine_handle<promise_type>::from_promise(*this).destroy();
        }

        std::optional<T> current;
        std::exception_ptr exception;  // what the body threw, for the awaiting next()
        std::exception_ptr inject;  // thrown at the co_yield when resumed (aclose: GeneratorExit)
        bool running = false;
        bool closed = false;         // aclose() before it ever ran: it never will
        bool owned_by_loop = false;  // dropped while suspended: the loop closes and frees it
    };
    using handle_type = std::coroutine_handle<promise_type>;

    AsyncGenerator() = default;
    AsyncGenerator(AsyncGenerator&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    AsyncGenerator& operator=(AsyncGenerator&& o) noexcept {
        if (this != &o) {
            drop();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    ~AsyncGenerator() { drop(); }

    struct NextAwaiter {
        handle_type h;
        detail::PromiseBase* parent = nullptr;
        // athrow(): thrown at the generator's co_yield, only once this awaiter is awaited (an
        // athrow() refused or never awaited leaves the generator alone).
        std::exception_ptr thrown = nullptr;
        std::exception_ptr raise = nullptr;  // athrow() on a generator that never started: thrown back
        const char* call = "anext()";
        bool used = false;

        bool await_ready() {
            // Each next() is one step: awaiting its awaiter again would silently take another.
            if (std::exchange(used, true))
                throw std::logic_error(std::string(call) + ": cannot reuse an already awaited awaiter");
            if (!h || h.done() || h.promise().closed) return true;
            if (thrown && !h.promise().started) {
                // Finished without running its body, and the exception comes straight back, as
                // Python's athrow() on a fresh generator does.
                h.promise().closed = true;
                raise = std::move(thrown);
                return true;
            }
            return false;
        }
        template <class P>
        bool await_suspend(std::coroutine_handle<P> caller) {
            auto& p = h.promise();
            if (p.running) throw std::logic_error(std::string(call) + ": asynchronous generator is already running");
            if (thrown) p.inject = std::move(thrown);
            if (!p.loop) {
                p.loop = &get_running_loop();
                p.loop->register_async_gen(p);
            }
            p.running = true;
            p.continuation = caller;
            p.current.reset();
            if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
                parent = &caller.promise();
                parent->awaiting = &p;
            }
            return !detail::PromiseBase::run_inline(h, p);
        }
        std::optional<T> await_resume() {
            if (raise) std::rethrow_exception(raise);
            if (!h) return std::nullopt;
            auto& p = h.promise();
            if (p.closed) return std::nullopt;
            p.running = false;
            if (parent) parent->awaiting = nullptr;
            std::exception_ptr error;
            std::optional<T> out;
            if (h.done()) {
                error = std::exchange(p.exception, nullptr);
            } else {
                out = std::move(p.current);
                p.current.reset();
            }
            // Its owner dropped it while this step ran inside it: the loop took it then, and
            // frees or closes it now that no task is inside.
            if (p.owned_by_loop && !p.closing) release_orphan(h);
            if (error) std::rethrow_exception(error);
            return out;
        }
    };

    // The next value, or std::nullopt once the generator has finished.
    NextAwaiter next() { return NextAwaiter{h_}; }

    // Throws `e` at the generator's co_yield (asyncgen.athrow): the next value it yields, or
    // std::nullopt if it finishes; whatever it throws propagates.
    // A generator that never started is finished without running its body and `e` comes straight
    // back, as Python's athrow() does.
    NextAwaiter athrow(std::exception_ptr e) {
        NextAwaiter throwing{h_};
        throwing.thrown = std::move(e);
        throwing.call = "athrow()";
        return throwing;
    }

    // Throws GeneratorExit at the generator's co_yield and runs it to the end.
    Coro<> aclose() { return close(h_); }

    bool done() const noexcept { return !h_ || h_.done() || h_.promise().closed; }

private:
    explicit AsyncGenerator(handle_type h) noexcept : h_(h) {}

    static Coro<> close(handle_type h) {
        if (!h || h.done()) co_return;
        if (!h.promise().started) {
            h.promise().closed = true;
            co_return;
        }
        if (h.promise().running) throw std::logic_error("aclose(): asynchronous generator is already running");
        h.promise().inject = std::make_exception_ptr(GeneratorExit{});
        try {
            auto more = co_await NextAwaiter{h};
            if (more) throw std::logic_error("async generator ignored GeneratorExit");
        } catch (const GeneratorExit&) {
        }
    }

    // The one closer task of a generator holds its claim, so that no second closer starts (the
    // shutdown's, or another drop's) and nobody else frees the frame while it works. Released as
    // the closer ends, or as its frame is destroyed unrun (cancelled at shutdown: shutdown_asyncgens
    // then closes the generator itself).
    class CloseClaim {
    public:
        explicit CloseClaim(handle_type h) noexcept : h_(h) { h.promise().closing = true; }
        CloseClaim(CloseClaim&& o) noexcept : h_(std::exchange(o.h_, {})) {}
        CloseClaim& operator=(CloseClaim&&) = delete;
        ~CloseClaim() {
            if (h_) h_.promise().closing = false;
        }
        handle_type handle() const noexcept { return h_; }
        // The closer is done: a frame the loop owns is freed, unless a task is still inside it.
        void finish() noexcept {
            handle_type h = std::exchange(h_, {});
            auto& p = h.promise();
            p.closing = false;
            if (p.owned_by_loop && !p.running) h.destroy();
        }

    private:
        handle_type h_;
    };

    // A frame the loop owns, that a step has just left: freed if finished, else closed by a task
    // (or, off the loop's thread, by the loop's shutdown).
    static void release_orphan(handle_type h) noexcept {
        auto& p = h.promise();
        if (h.done() || p.closed || !p.loop || p.loop->is_closed()) {
            h.destroy();
            return;
        }
        if (detail::running_loop() != p.loop) return;
        try {
            Coro<> closer = close_and_free(CloseClaim(h));
            (void)detail::spawn(*p.loop, std::move(closer), detail::kAsyncGenCloserName, std::source_location::current());
        } catch (...) {
        }
    }

    // Closes a generator and, if the loop owns it (its owner dropped it mid-iteration), frees it.
    static Coro<> close_and_free(CloseClaim claim) {
        handle_type h = claim.handle();
        h.promise().close_attempted = true;
        std::exception_ptr error;
        try {
            Coro<> closing = close(h);
            co_await std::move(closing);
        } catch (...) {
            error = std::current_exception();
        }
        claim.finish();
        if (error) std::rethrow_exception(error);
    }

    // Dropped while suspended at a co_yield, it still owes its cleanup. The loop takes the frame:
    // a task runs the cleanup now, and if that task never gets to run (cancelled at shutdown),
    // the loop's shutdown_asyncgens still does, and frees the frame after.
    void drop() noexcept {
        if (!h_) return;
        handle_type h = std::exchange(h_, {});
        auto& p = h.promise();
        // A task is inside it (its closer, or another task's next()): that one lets go of it
        // once the step ends (CloseClaim::finish, NextAwaiter::await_resume).
        if (p.closing || (p.running && p.loop && !p.loop->is_closed())) {
            p.owned_by_loop = true;
            return;
        }
        if (p.started && !h.done() && !p.running && p.loop && !p.loop->is_closed()) {
            p.owned_by_loop = true;
            if (detail::running_loop() == p.loop) {
                try {
                    Coro<> closer = close_and_free(CloseClaim(h));
                    (void)detail::spawn(*p.loop, std::move(closer), detail::kAsyncGenCloserName, std::source_location::current());
                } catch (...) {
                }
            }
            return;
        }
        if (!p.started && !p.closed) detail::report_never_awaited(p);
        h.destroy();
    }

    handle_type h_;
};

}  // namespace corio
