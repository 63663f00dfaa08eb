// What every corio coroutine frame has in common: where to go when it finishes, how it was
// started (inline or by the loop), and the links the call-graph walker follows.
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <source_location>

#include "corio/detail/frame_alloc.hpp"

namespace corio::detail {

struct PromiseBase : RecycledFrame {
    // The source location of the coroutine function itself (see Coro's promise_type).
    explicit PromiseBase(std::source_location loc) noexcept : location(loc) {}

    std::coroutine_handle<> continuation;
    PromiseBase* awaiting = nullptr;  // the child coroutine this frame is suspended in
    std::source_location location;
    bool started = false;
    // Set while an awaiter resumes this frame from inside its own await_suspend. A frame that
    // then completes (or yields) returns to that awaiter instead of transferring to the
    // continuation, so chains of synchronously completing awaits never grow the stack, with
    // or without the compiler turning symmetric transfer into a tail call (GCC PR 94794).
    bool inline_mode = false;
    bool inline_done = false;
    // What ValuePromise's union holds (here, in padding): a frame returns a value or throws,
    // never both, so the two share their bytes.
    enum class Outcome : std::uint8_t { None, Value, Error };
    Outcome outcome = Outcome::None;
    // Dropped unawaited, it is not reported as never awaited (a gather, whose children run anyway).
    bool quiet_when_dropped = false;

    // Leaves the frame at final_suspend or co_yield.
    std::coroutine_handle<> transfer_out() noexcept {
        if (inline_mode) {
            inline_done = true;
            return std::noop_coroutine();
        }
        if (continuation) return continuation;
        return std::noop_coroutine();
    }

    // Runs `child` from inside the parent's await_suspend. Returns true when the child
    // finished or yielded before suspending, so the parent goes on without suspending.
    static bool run_inline(std::coroutine_handle<> child, PromiseBase& p) {
        p.started = true;
        p.inline_mode = true;
        p.inline_done = false;
        child.resume();
        if (p.inline_done) {
            p.inline_mode = false;
            return true;
        }
        p.inline_mode = false;
        return false;
    }
};

// Empty: whoever resumes a frame first marks it started (run_inline, or the task's first step).
struct InitialSuspend {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const noexcept {}
};

// Empty (it reaches the promise through the handle): g++ keeps every awaiter in the frame.
struct FinalSuspend {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
        return h.promise().transfer_out();
    }
    void await_resume() const noexcept {}
};

// Reports a coroutine that was destroyed without ever running (debug mode).
void report_never_awaited(const PromiseBase& p) noexcept;

}  // namespace corio::detail
