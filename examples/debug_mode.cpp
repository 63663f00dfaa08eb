// The concurrency checker at work: debug mode catches the guides' "common mistakes" as they
// happen, and says which task and which line did it.
//   1. blocking the event loop (time.sleep instead of asyncio.sleep)
//   2. forgetting an await (the coroutine never runs)
//   3. swallowing a CancelledError
//   4. a failing task whose exception nobody retrieves (fire-and-forget)
// Run with CORIO_DEBUG=1 on any program for the same reports on stderr.
#include <corio/corio.hpp>

#include <iostream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

std::vector<std::string> reports;

corio::Coro<> save_report() { co_await corio::sleep(1ms); }

corio::Coro<> blocking_handler() {
    std::this_thread::sleep_for(150ms);  // mistake 1: blocks every other task for 150 ms
    co_return;
}

corio::Coro<> forgetful_handler() {
    // [[nodiscard]] already warns at compile time; silenced here to show the run-time report.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-result"
    save_report();  // mistake 2: no co_await, so it never runs
#pragma GCC diagnostic pop
    co_return;
}

corio::Coro<int> stubborn_worker() {
    try {
        co_await corio::sleep(1h);
    } catch (const corio::CancelledError&) {
        // mistake 3: the cancellation is swallowed instead of rethrown
    }
    co_return 0;
}

corio::Coro<> failing_job() {
    co_await corio::sleep(1ms);
    throw std::runtime_error("disk full");
}

corio::Coro<int> main_coro() {
    corio::EventLoop& loop = corio::get_running_loop();
    loop.set_exception_handler([](corio::EventLoop& l, const corio::ExceptionContext& c) {
        reports.push_back(c.message);
        l.default_exception_handler(c);  // prints the task, where it was created, the await chain
    });

    auto blocker = corio::create_task(blocking_handler(), "blocker");
    co_await blocker;

    auto forgetful = corio::create_task(forgetful_handler(), "forgetful");
    co_await forgetful;

    auto stubborn = corio::create_task(stubborn_worker(), "stubborn");
    co_await corio::sleep(0s);
    stubborn.cancel();
    co_await stubborn;

    (void)corio::create_task(failing_job(), "fire-and-forget");  // mistake 4: the handle is dropped

    auto saw = [](const std::string& part) {
        for (const auto& r : reports)
            if (r.find(part) != std::string::npos) return true;
        return false;
    };
    // Its failure is reported as it goes (waited for, not timed: a loaded machine is slower).
    for (int i = 0; i < 5000 && !saw("exception was never retrieved"); ++i) co_await corio::sleep(1ms);
    bool ok = saw("Executing <Task blocker> took") && saw("save_report()' was never awaited") &&
              saw("Task stubborn returned normally although its cancellation was requested") &&
              saw("exception was never retrieved");
    std::cout << (ok ? "debug mode caught all four mistakes\n" : "some mistake went unnoticed\n");
    co_return ok ? 0 : 1;
}

int main() {
    corio::RunOptions options;
    options.debug = true;  // or run with CORIO_DEBUG=1
    return corio::run(main_coro(), std::move(options));
}
