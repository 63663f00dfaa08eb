// ExceptionGroup and except*, task cancellation, cleanup on cancel, shield, Ctrl-C.
#include <corio/corio.hpp>

#include <algorithm>
#include <csignal>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

std::vector<std::string> logged;

// [error-types]
struct ValueError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct TypeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void log_error(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        std::cout << "logged: " << x.what() << '\n';
        logged.push_back(x.what());
    }
}
// [end error-types]

// Both fail in the same tick (a group's reaction to a failure comes a tick later, as in
// asyncio): the group holds both errors, and each except* clause has one.
corio::Coro<> may_fail_a() {
    co_await corio::sleep(0s);
    throw ValueError("bad value in a");
}
corio::Coro<> may_fail_b() {
    co_await corio::sleep(0s);
    throw TypeError("bad type in b");
}

// [except-star]
corio::Coro<> run_both() {
    try {
        co_await corio::task_group([&](corio::TaskGroup& tg) -> corio::Coro<> {
            tg.create_task(may_fail_a());
            tg.create_task(may_fail_b());
            co_return;
        });
    } catch (const corio::ExceptionGroup& eg) {
        auto [value_errors, rest] = eg.split<ValueError>();        // except* ValueError as eg:
        if (value_errors)
            for (const auto& e : value_errors->exceptions()) log_error(e);
        if (rest) {
            auto [type_errors, unhandled] = rest->split<TypeError>();  // except* TypeError as eg:
            if (type_errors)
                for (const auto& e : type_errors->exceptions()) log_error(e);
            if (unhandled) throw *unhandled;  // what no clause matched goes on up
        }
    }
}
// [end except-star]

bool cleaned_up = false;

// [cleanup]
corio::Coro<> long_running() {
    try {
        co_await corio::sleep(1h);
    } catch (const corio::CancelledError&) {
        cleaned_up = true;  // release what must be released...
        throw;              // ...then let the cancellation go on: never swallow it
    }
}
// [end cleanup]

// [cancel]
corio::Coro<> cancel_it() {
    auto task = corio::create_task(long_running());
    co_await corio::sleep(0s);  // let it start (a task cancelled before it starts never runs)
    task.cancel("shutting down");

    try {
        co_await task;
    } catch (const corio::CancelledError& e) {
        std::cout << "task was cancelled: " << e.what() << '\n';  // "shutting down"
    }
}
// [end cancel]

std::vector<std::string> steps;
corio::Coro<> flush_buffers() {
    co_await corio::sleep(1ms);
    steps.push_back("flushed");
}

// [async-cleanup]
corio::Coro<> worker() {
    std::exception_ptr error;
    try {
        co_await corio::sleep(1h);
    } catch (...) {                        // CancelledError included
        error = std::current_exception();  // no co_await in a handler: remember, leave it...
    }
    co_await flush_buffers();              // ...clean up with awaits...
    if (error) std::rethrow_exception(error);  // ...and go on with the cancellation
}
// [end async-cleanup]

corio::Coro<> cancel_worker() {
    auto t = corio::create_task(worker());
    co_await corio::sleep(1ms);
    t.cancel();
    try {
        co_await t;
    } catch (const corio::CancelledError&) {
        steps.push_back("cancelled");
    }
}

// [shield]
corio::Coro<> save(std::vector<std::string>* log) {
    co_await corio::sleep(20ms);
    log->push_back("saved");
}

corio::Coro<> save_then_exit(std::vector<std::string>* log) {
    auto saving = corio::create_task(save(log));
    co_await corio::shield(saving);  // cancelling this task does not cancel the save
}
// [end shield]

corio::Coro<> shield_demo() {
    auto t = corio::create_task(save_then_exit(&steps));
    co_await corio::sleep(1ms);
    t.cancel();
    try {
        co_await t;
    } catch (const corio::CancelledError&) {
        steps.push_back("outer cancelled");
    }
    // The save goes on and finishes (waited for, not timed: a loaded machine may take longer).
    for (int i = 0; i < 5000 && std::find(steps.begin(), steps.end(), "saved") == steps.end(); ++i)
        co_await corio::sleep(1ms);
}

corio::Coro<int> checks() {
    co_await run_both();
    co_await cancel_it();
    co_await cancel_worker();
    co_await shield_demo();
    // [contains]
    corio::ExceptionGroup eg("two failures", {std::make_exception_ptr(ValueError("v")),
                                              std::make_exception_ptr(TypeError("t"))});
    bool has_value_error = eg.contains<ValueError>();          // looks into nested groups too
    bool has_logic_error = eg.contains<std::logic_error>();   // false
    // [end contains]
    // The outer cancellation and the save's end race only if the machine stalls for 20 ms.
    const std::vector<std::string> in_order{"flushed", "cancelled", "outer cancelled", "saved"};
    const std::vector<std::string> save_first{"flushed", "cancelled", "saved", "outer cancelled"};
    bool ok = logged == std::vector<std::string>{"bad value in a", "bad type in b"} && cleaned_up &&
              (steps == in_order || steps == save_first) &&
              has_value_error && !has_logic_error;
    co_return ok ? 0 : 1;
}

// The program's work: it runs until Ctrl-C (simulated here with raise(SIGINT)).
corio::Coro<int> serve() {
    int rc = co_await checks();
    corio::get_running_loop().call_later(10ms, [] { std::raise(SIGINT); });
    try {
        co_await corio::sleep(1h);
    } catch (const corio::CancelledError&) {
        std::cout << "main task cancelled by Ctrl-C: cleaning up\n";
        throw;
    }
    co_return rc;
}

// [ctrl-c]
int main() {
    try {
        return corio::run(serve());  // Ctrl-C cancels serve(); its cleanup runs; then...
    } catch (const corio::KeyboardInterrupt&) {
        std::cout << "interrupted: shut down cleanly\n";  // ...run() throws KeyboardInterrupt
        return logged.size() == 2 ? 0 : 1;
    }
}
// [end ctrl-c]
