// asyncio.run and asyncio.Runner: the single entry point and its multi-call form.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <source_location>
#include <vector>

#include "corio/coro.hpp"
#include "corio/loop.hpp"
#include "corio/task.hpp"

namespace corio {

namespace detail {
// The signal (SIGINT, SIGTERM) a runner last took as Ctrl-C since the previous call, or 0: the
// test harness stops the run for a real signal, not for a KeyboardInterrupt a test threw.
int take_runner_interrupt() noexcept;
}  // namespace detail

struct RunOptions {
    bool debug = false;  // also on when the CORIO_DEBUG environment variable is set
    std::optional<std::chrono::nanoseconds> slow_callback_duration{};
    std::unique_ptr<IoBackend> backend{};  // the default backend when empty
    // On the main thread, for SIGINT and SIGTERM when they have their default disposition: the
    // first signal cancels the main task (its cleanup runs), and run() then throws
    // KeyboardInterrupt (with the signal's number); a second one ends the process at once. One
    // during the shutdown after main returned cancels what still runs, then run() throws it.
    bool handle_sigint = true;
    // Live introspection: `corio-ps PID` shows the tasks (also on with CORIO_INTROSPECT=1).
    bool introspect = false;
};

// asyncio.run(main()): makes a loop, runs `main`, then shuts everything down in asyncio's order.
template <class T>
T run(Coro<T> main, RunOptions options = {}, std::source_location where = std::source_location::current());

class Runner {
public:
    explicit Runner(RunOptions options = {});
    ~Runner();
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    // Runs `main` as a task on this runner's loop until it is done.
    template <class T>
    T run(Coro<T> main, std::source_location where = std::source_location::current()) {
        EventLoop& loop = prepare_run();
        Task<T> task = detail::spawn(loop, std::move(main), "main", where);
        run_main(*task.state());
        return detail::take_result<T>(*task.typed(), true);
    }

    // Cancels and awaits every remaining task, closes async generators, shuts the default
    // executor down and closes the loop. Idempotent; the destructor calls it.
    void close();
    EventLoop& get_loop();

private:
    template <class T>
    friend T run(Coro<T> main, RunOptions options, std::source_location where);
    struct Interrupts;

    EventLoop& prepare_run();
    void run_main(detail::TaskBase& main);
    void cancel_all_tasks();
    void shutdown_asyncgens();
    // SIGINT and SIGTERM (handle_sigint): watched while main runs, where the first cancels it,
    // and during close(), where the first cancels whatever still runs and close() then throws
    // KeyboardInterrupt; a second signal ends the process.
    void watch_signals(detail::TaskBase* main);
    void unwatch_signals() noexcept;
    // Runs the handlers of signals already in the loop's pipe (the shutdown may have been too
    // short for the loop to read it).
    void take_pending_signals();
    // corio::run after main failed: close(), and a Ctrl-C during that shutdown replaces main's
    // error (asyncio's runner raises KeyboardInterrupt out of its __exit__); a shutdown error
    // does not.
    void close_after_failure();

    RunOptions options_;
    std::unique_ptr<EventLoop> loop_;
    std::shared_ptr<Interrupts> interrupts_;
    std::vector<int> watched_;
    // corio::run closes the runner as soon as main is done: the signals stay watched in between.
    bool closes_after_run_ = false;
    bool shutting_down_ = false;
    bool closed_ = false;
};

template <class T>
T run(Coro<T> main, RunOptions options, std::source_location where) {
    Runner runner(std::move(options));
    runner.closes_after_run_ = true;
    try {
        if constexpr (std::is_void_v<T>) {
            runner.run(std::move(main), where);
            runner.close();
        } else {
            T result = runner.run(std::move(main), where);
            runner.close();
            return result;
        }
    } catch (...) {
        runner.close_after_failure();
        throw;
    }
}

}  // namespace corio
