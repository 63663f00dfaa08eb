// One loop per core: corio::run on several threads at once, sharing nothing.
//
// asyncio has one loop per thread too, and leaves the rest to the user; this is the small part
// every multi-core server writes again: start N loops, stop them all when one of them fails or
// the user presses Ctrl-C, join them, and hand back each loop's result. Loops talk to each other
// only through EventLoop::call_soon_threadsafe (or run_coroutine_threadsafe).
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <source_location>
#include <thread>
#include <type_traits>
#include <vector>

#include "corio/runners.hpp"

namespace corio {

struct RunLoopsOptions {
    // For loop 0, which runs on the calling thread (and there handles SIGINT/SIGTERM, cancelling
    // every loop). The other loops take its debug and introspection settings, no signals.
    RunOptions options{};
    // Pins loop i to CPU i (mod the CPUs this process may use): no migrations, warm caches. The
    // calling thread (loop 0) gets its own affinity back when run_loops returns.
    bool pin_threads = false;
};

namespace detail {
// What the loops share: where each one's main task is, so that the first to fail (or Ctrl-C on
// loop 0) cancels the others. Every access to another loop goes through call_soon_threadsafe.
class LoopSet {
public:
    explicit LoopSet(std::size_t count);
    ~LoopSet();
    LoopSet(const LoopSet&) = delete;
    LoopSet& operator=(const LoopSet&) = delete;

    // On loop `index`'s thread, inside its main task: from now on stop_all() reaches it.
    void enter(std::size_t index);
    // On the same thread, before its loop closes.
    void leave(std::size_t index) noexcept;
    // Cancels the main task of every loop (once).
    void stop_all() noexcept;
    // On loop `index`'s thread: pins it to one CPU (see RunLoopsOptions::pin_threads).
    void pin(std::size_t index) noexcept;
    // On the calling thread, once loop 0 is done: joins the other loops. With `handle_sigint`,
    // Ctrl-C (or SIGTERM) still cancels them meanwhile (loop 0's run no longer watches it);
    // returns the signal's number if one did, else 0.
    int join_others(std::vector<std::thread>& threads, bool handle_sigint);

private:
    struct Slot;
    std::unique_ptr<Slot[]> slots_;
    std::size_t count_;
    struct Shared;
    std::unique_ptr<Shared> shared_;
};

// Test hook: called on the calling thread once Ctrl-C is watched again after loop 0 is done.
extern void (*run_loops_watching_hook)();

template <class T>
Coro<T> loop_main(LoopSet* set, std::size_t index, Coro<T> body) {
    set->enter(index);
    struct Leave {
        LoopSet* set;
        std::size_t index;
        ~Leave() { set->leave(index); }
    } leave{set, index};
    try {
        co_return co_await std::move(body);
    } catch (...) {
        set->stop_all();  // the first failure ends them all, as in a TaskGroup
        throw;
    }
}
}  // namespace detail

// Runs make_main(i) for i in [0, count) with corio::run, each on its own thread and loop (loop 0
// on the calling thread), and returns their results in order. When one main task fails, or
// Ctrl-C reaches loop 0, every other main task is cancelled; once all threads are joined one
// failure is rethrown: KeyboardInterrupt if Ctrl-C stopped them, else the failure of the
// lowest-numbered loop that did not merely get cancelled.
template <class F, class Coroutine = std::invoke_result_t<F&, std::size_t>,
          class T = typename Coroutine::value_type>
auto run_loops(std::size_t count, F make_main, RunLoopsOptions options = {},
               std::source_location where = std::source_location::current()) {
    if (count == 0) throw std::invalid_argument("corio::run_loops: count must be at least 1");
    detail::LoopSet set(count);
    using Stored = std::conditional_t<std::is_void_v<T>, char, std::optional<T>>;
    std::vector<Stored> results(count);
    std::vector<std::exception_ptr> errors(count);
    auto run_one = [&](std::size_t i, RunOptions run_options) {
        try {
            if (options.pin_threads) set.pin(i);
            Coroutine body = make_main(i);
            Coro<T> main = detail::loop_main<T>(&set, i, std::move(body));
            if constexpr (std::is_void_v<T>) {
                run(std::move(main), std::move(run_options), where);
            } else {
                results[i].emplace(run(std::move(main), std::move(run_options), where));
            }
        } catch (...) {
            errors[i] = std::current_exception();
            set.stop_all();
        }
    };
    std::vector<std::thread> threads;
    threads.reserve(count - 1);
    for (std::size_t i = 1; i < count; ++i) {
        RunOptions others;
        others.debug = options.options.debug;
        others.slow_callback_duration = options.options.slow_callback_duration;
        others.introspect = options.options.introspect;
        others.handle_sigint = false;
        try {
            threads.emplace_back(run_one, i, std::move(others));
        } catch (...) {
            set.stop_all();
            for (auto& t : threads) t.join();
            throw;
        }
    }
    const bool handle_sigint = options.options.handle_sigint;
    run_one(0, std::move(options.options));
    if (int signal_number = set.join_others(threads, handle_sigint)) throw KeyboardInterrupt(signal_number);
    // Ctrl-C first: it is why the others were cancelled.
    for (auto& e : errors) {
        if (!e) continue;
        try {
            std::rethrow_exception(e);
        } catch (const KeyboardInterrupt&) {
            throw;
        } catch (...) {
        }
    }
    for (auto& e : errors)
        if (e && !detail::is_cancellation(e)) std::rethrow_exception(e);
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
    if constexpr (!std::is_void_v<T>) {
        std::vector<T> out;
        out.reserve(count);
        for (auto& r : results) out.push_back(std::move(*r));
        return out;
    }
}

}  // namespace corio
